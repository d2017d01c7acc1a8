"""Reading lead files: CSV with a header row, or JSON lines; UTF-8 with or without BOM.

Rows stream out one at a time with their physical line number, so a 50 MB file never sits in
memory and every bad row can be reported as ``FILE: line N: reason``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from worker.domain.leads import field_key, printable
from worker.errors import LeadError

MAX_FIELD_BYTES = 64 << 20


@dataclass(frozen=True)
class Row:
    line: int
    data: dict[str, Any] | None
    error: str | None = None


class ImportFileError(Exception):
    """The file as a whole cannot be read (empty, no header, no email column)."""


def detect_encoding(path: Path) -> tuple[str, bool]:
    """(encoding, clean). A file valid as UTF-8 (with or without BOM) is ``utf-8-sig``; a file
    with a UTF-8 BOM stays UTF-8 (stray bytes replaced); any other is read as ``cp1252``,
    as spreadsheets save Latin-1/Windows-1252, which keeps every row."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with open(path, "rb") as handle:
        bom = handle.read(3) == codecs.BOM_UTF8
        handle.seek(0)
        try:
            while chunk := handle.read(1 << 20):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)  # a sequence cut at the end of the file
        except UnicodeDecodeError:
            return ("utf-8-sig", False) if bom else ("cp1252", False)
    return "utf-8-sig", True


def detect_format(path: Path, first_char: str) -> str:
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    return "jsonl" if first_char in "{[" else "csv"


class _Lines:
    """Physical lines as the csv module reads them, counted, with the lines of the current
    record kept so that a record read wrongly can be put back and read again."""

    def __init__(self, stream: io.TextIOWrapper) -> None:
        self.stream = stream
        self.lines = 0
        self.taken: list[str] = []
        self._back: list[str] = []  # put back, last line first

    def __iter__(self) -> _Lines:
        return self

    def __next__(self) -> str:
        line = self._back.pop() if self._back else self.stream.readline()
        if not line:
            raise StopIteration
        self.lines += 1
        self.taken.append(line)
        return line

    def put_back(self, lines: list[str]) -> None:
        self._back.extend(reversed(lines))
        self.lines -= len(lines)


def _runs_past_its_line(taken: list[str], dialect: type[csv.Dialect] | csv.Dialect,
                        delimiter: str) -> bool:
    """A record read over several lines that is not strict CSV: a stray quote opened a value
    that swallowed the lines after it (to the end of the file or to some later quote)."""
    try:
        records = list(csv.reader(taken, dialect, delimiter=delimiter, strict=True))
    except csv.Error:
        return True
    return len(records) != 1


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
        except (ValueError, RecursionError) as exc:  # huge numbers, absurd nesting
            yield Row(number, None, f"not usable JSON: {str(exc)[:100]}")
            continue
        if not isinstance(data, dict):
            yield Row(number, None, "expected a JSON object of lead fields")
            continue
        yield Row(number, data)


def _csv_rows(stream: io.TextIOWrapper, head: str) -> Iterator[Row]:
    # Only the delimiter comes from the sniffer (from the header line, whatever ends it);
    # quoting stays RFC 4180, where "" inside a quoted value is one quote.
    first = re.split(r"\r\n|\r|\n", head, maxsplit=1)[0]
    try:
        delimiter = csv.Sniffer().sniff(first, ",;\t|").delimiter
    except csv.Error:
        delimiter = ","
    # A long value is read whole and refused by its length (rather than the csv module
    # giving up inside the quotes and reading the rest of the value as rows).
    csv.field_size_limit(MAX_FIELD_BYTES)
    counting = _Lines(stream)
    reader = csv.reader(counting, csv.excel, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        raise ImportFileError("empty file") from None
    except csv.Error as exc:
        raise ImportFileError(f"line 1: the header row is not valid CSV: {exc}") from None
    names = _column_names(header)
    while True:
        start = counting.lines + 1
        counting.taken = []
        try:
            values: list[str] | None = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            values, error = None, f"not valid CSV: {exc}"
        # A value ending in a line break was cut by the end of the file inside quotes.
        suspect = len(counting.taken) > 1 or bool(values and values[-1].endswith(("\n", "\r")))
        if suspect and _runs_past_its_line(counting.taken, csv.excel, delimiter):
            # Re-read from the next line with a fresh reader: the old one is inside quotes.
            counting.put_back(counting.taken[1:])
            reader = csv.reader(counting, csv.excel, delimiter=delimiter)
            yield Row(start, None, "a quoted value is not closed on its line (stray quote); "
                      "the lines after it were read again")
            continue
        if error or values is None:
            yield Row(start, None, error)
            continue
        if not values or all(not v.strip() for v in values):
            continue
        if len(values) > len(names):
            yield Row(start, None, f"{len(values)} values but the header has {len(names)} "
                      "columns")
            continue
        data = {name: value for name, value in zip(names, values, strict=False) if name}
        yield Row(start, data)


def _column_names(header: list[str]) -> list[str]:
    """The header's names, normalised; ImportFileError for no email column or two columns
    that name the same field (``A-b``, ``a_b``, ``a b``)."""
    names = [h.strip().lower().replace(" ", "_") for h in header]
    if "email" not in names:
        aliases = {"e-mail", "email_address", "mail", "e_mail"}
        for i, name in enumerate(names):
            if name in aliases:
                names[i] = "email"
                break
        else:
            shown = ", ".join(printable(h) for h in header)
            raise ImportFileError(f"line 1: no 'email' column in the header ({shown})")
    seen: dict[str, str] = {}
    for original, name in zip(header, names, strict=True):
        try:
            key = field_key(name) if name else ""
        except LeadError:
            continue  # an unusable name is reported on each row that has a value there
        if key and key in seen:
            raise ImportFileError(f"line 1: columns {printable(seen[key])!r} and "
                                  f"{printable(original)!r} name the same field {key!r}")
        if key:
            seen[key] = original
    dupes = {n for n in names if names.count(n) > 1 and n}
    if dupes:
        raise ImportFileError(f"line 1: column named twice: "
                              f"{', '.join(printable(d) for d in sorted(dupes))}")
    return names
