"""Reading lead files: CSV with a header row, or JSON lines; UTF-8 with or without BOM.

Rows stream out one at a time with their physical line number, so a 50 MB file never sits in
memory and every bad row can be reported as ``FILE: line N: reason``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

csv.field_size_limit(1 << 20)


@dataclass(frozen=True)
class Row:
    line: int
    data: dict[str, Any] | None
    error: str | None = None


class ImportFileError(Exception):
    """The file as a whole cannot be read (empty, no header, no email column)."""


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` when the file is valid UTF-8 (with or without BOM), else ``cp1252``:
    spreadsheets often save Latin-1/Windows-1252; decoding it as such keeps every row."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return "cp1252"
    return "utf-8-sig"


def detect_format(path: Path, first_char: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if first_char in "{[" else "csv"


class _Counting:
    """Counts physical lines as the csv module reads them."""

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self.stream = stream
        self.lines = 0

    def __iter__(self) -> _Counting:
        return self

    def __next__(self) -> str:
        line = self.stream.readline()
        if not line:
            raise StopIteration
        self.lines += 1
        return line


def read_rows(path: Path, binary: BinaryIO, encoding: str) -> Iterator[Row]:
    """Rows of a lead file. Raises ImportFileError for a file that cannot be read at all."""
    stream = io.TextIOWrapper(binary, encoding=encoding, errors="replace", newline="")
    head = stream.read(4096)
    if not head.strip():
        raise ImportFileError("empty file (expected a header row with an 'email' column, or "
                              "JSON lines)")
    stream.seek(0)
    fmt = detect_format(path, head.lstrip()[:1])
    if fmt == "jsonl":
        yield from _json_rows(stream)
    else:
        yield from _csv_rows(stream, head)


def _json_rows(stream: io.TextIOWrapper) -> Iterator[Row]:
    for number, line in enumerate(stream, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Row(number, None, f"not valid JSON: {exc.msg} (column {exc.colno})")
            continue
        if not isinstance(data, dict):
            yield Row(number, None, "expected a JSON object of lead fields")
            continue
        yield Row(number, data)


def _csv_rows(stream: io.TextIOWrapper, head: str) -> Iterator[Row]:
    try:
        dialect: type[csv.Dialect] = csv.Sniffer().sniff(head.split("\n", 1)[0], ",;\t|")
    except csv.Error:
        dialect = csv.excel
    counting = _Counting(stream)
    reader = csv.reader(counting, dialect)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("empty file") from None
    except csv.Error as exc:
        raise ImportFileError(f"line 1: the header row is not valid CSV: {exc}") from None
    names = [h.strip().lower().replace(" ", "_") for h in header]
    if "email" not in names:
        aliases = {"e-mail", "email_address", "mail", "e_mail"}
        for i, name in enumerate(names):
            if name in aliases:
                names[i] = "email"
                break
        else:
            raise ImportFileError(f"line 1: no 'email' column in the header ({', '.join(header)})")
    dupes = {n for n in names if names.count(n) > 1 and n}
    if dupes:
        raise ImportFileError(f"line 1: column named twice: {', '.join(sorted(dupes))}")
    last = counting.lines
    while True:
        start = last + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            last = counting.lines
            yield Row(start, None, f"not valid CSV: {exc}")
            continue
        last = counting.lines
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) > len(names):
            yield Row(start, None, f"{len(values)} values but the header has {len(names)} "
                      "columns")
            continue
        data = {name: value for name, value in zip(names, values, strict=False) if name}
        yield Row(start, data)
