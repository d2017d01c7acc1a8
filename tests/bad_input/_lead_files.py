"""Lead files for the import suites: rows whose fate is known in advance, and the checks.

A ``Plan`` is a file (its bytes) and, for each record, what must become of it: kept with its
values, or rejected with a stated reason at its physical line. ``check_plan`` imports it twice
through the real command and holds the worker to that.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st

from tests.bad_input._support import (
    CONTROLS,
    Workspace,
    examples,
    fresh_domain,
    nasty_text,
    run_cli,
)
from worker.domain.leads import COLUMN_LENGTHS, MAX_VALUE_LENGTH

EXAMPLES = examples(40)
COLUMNS = ["email", "first_name", "company", "note"]
LIMIT = MAX_VALUE_LENGTH  # custom fields; the lead's own columns have their own lengths


def limit_of(column: str) -> int:
    """How long a value of ``column`` may be (worker.domain.leads)."""
    return COLUMN_LENGTHS.get(column, MAX_VALUE_LENGTH)
BAD_EMAILS = ["not-an-address", "a@", "@x.test", "a b@x.test", "a@@x.test", "a@x..test",
              ".a@x.test", "a@-x.test", "\ufeffa@x.test", "a\u200f@x.test", "<a@x.test>",
              "a,b@x.test", "a;b@x.test", "mailto:a@x.test", "a@x_y.test",
              "a@[127.0.0.1]", "a@x\u202e.test"]


def bad_emails(latin: bool) -> list[str]:
    """Read as cp1252, a BOM or a bidi mark becomes letters a mailbox may hold: ASCII only."""
    return [e for e in BAD_EMAILS if e.isascii() or not latin]


INVALID_UTF8 = [b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\x81", b"\xed\xa0\x80",
                b"\xf8\x88\x80\x80\x80",
                b"\xe2\x82"]
LINE_BREAK = re.compile(r"\r\n|\r|\n")

# --- the rows ------------------------------------------------------------------------------

@dataclass
class Row:
    """One record of the file and what must become of it."""

    text: str                         # serialized, with its line end
    reason: str | None = None         # None: kept; else the start of the reported reason
    email: str | None = None          # normalised address of a kept row
    values: dict[str, Any] = field(default_factory=dict)  # expected stored values
    blank: bool = False               # skipped, not a data row


@dataclass
class Plan:
    rows: list[Row]
    suppressed: list[str]
    latin: bool                       # bytes that are not UTF-8 somewhere: read as cp1252
    data: bytes

    def expected_reports(self) -> dict[int, str]:
        out: dict[int, str] = {}
        line = 2
        for row in self.rows:
            if row.reason is not None:
                out[line] = row.reason
            line += len(LINE_BREAK.findall(row.text))
        return out

    @property
    def good(self) -> list[Row]:
        return [r for r in self.rows if r.reason is None and not r.blank]

    @property
    def data_rows(self) -> int:
        return sum(1 for r in self.rows if not r.blank)


def physical_start(rows: list[Row], index: int) -> int:
    return 2 + sum(len(LINE_BREAK.findall(r.text)) for r in rows[:index])


def address(draw: st.DrawFn, domain: str, number: int, latin: bool = False) -> tuple[str, str]:
    """(as written, normalised): random case and padding that stripping removes (ASCII
    padding only in a file read as cp1252, where U+2028's bytes are three letters)."""
    local = draw(st.sampled_from(["lead", "Ann.Lee", "o'brien", "x+tag", "first_last", "z-9"]))
    plain = f"{local}{number}@{domain}"
    cased = "".join(c.upper() if draw(st.booleans()) else c for c in f"{local}{number}")
    written = f"{cased}@{domain.upper() if draw(st.booleans()) else domain}"
    pad = st.sampled_from(["", " ", "\t "] if latin else
                          ["", " ", "\u2028", "\x85", "\u00a0", "  \u3000"])
    return draw(pad) + written + draw(pad), plain.lower()


def value(draw: st.DrawFn, exclude: str) -> str:
    """A value a lead may have: anything but CR, LF, NUL, within the length limit."""
    kind = draw(st.sampled_from(["text", "text", "text", "empty", "long", "number"]))
    if kind == "empty":
        return draw(st.sampled_from(["", " ", "\t\u2028"]))
    if kind == "long":
        return "v" * draw(st.integers(min(COLUMN_LENGTHS.values()) - 10,
                                      min(COLUMN_LENGTHS.values())))
    if kind == "number":
        return draw(st.sampled_from(["42", "-7", "3.25", "0012", "١٢", "1e5", "99999999999999999"]))
    return draw(nasty_text(exclude=exclude + CONTROLS))


def stored_form(raw: str, column: str) -> Any:
    """What the worker keeps for ``raw`` (stripped; numbers as numbers in custom fields)."""
    text = raw.strip()
    if not text:
        return None
    if column == "note":
        try:
            number = float(text)
        except ValueError:
            return text
        if re.fullmatch(r"-?[0-9]{1,15}(\.[0-9]{1,15})?", text):
            return number
    return text


# --- the checks ------------------------------------------------------------------------------

REPORT = re.compile(r"^(?P<file>.*?): line (?P<line>\d+): (?P<reason>.*)$", re.S)
COUNTS = re.compile(r"^imported (\d+), updated (\d+), unchanged (\d+), rejected (\d+)$")


def import_file(ws: Workspace, name: str, data: bytes) -> tuple[int, dict[int, str],
                                                                   tuple[int, ...], str]:
    path = ws.tmp / name
    path.write_bytes(data)
    result = run_cli("leads", "import", str(path))
    assert "Traceback" not in result.err and "internal error" not in result.err, result.err
    assert result.code in (0, 1), result
    *reports, last = result.lines
    counts = COUNTS.match(last)
    assert counts, f"last line is not the counts line: {last!r}"
    found: dict[int, str] = {}
    for report in reports:
        match = REPORT.match(report)
        assert match and match["file"] == str(path), f"not FILE: line N: reason: {report!r}"
        number = int(match["line"])
        assert number not in found, f"line {number} reported twice"
        found[number] = match["reason"]
    return result.code, found, tuple(int(g) for g in counts.groups()), result.err


def check_plan(ws: Workspace, plan: Plan, suffix: str, header_lines: int = 1) -> None:
    for email in plan.suppressed:
        ws.app.db.add_suppression(email, "unsubscribed", "test")
    name = f"leads-{fresh_domain()}{suffix}"
    if not header_lines and not plan.data_rows:
        # A JSON-lines file with nothing but blank lines is refused as a whole
        (ws.tmp / name).write_bytes(plan.data)
        result = run_cli("leads", "import", str(ws.tmp / name))
        assert result.code == 1 and "empty file" in result.err and not result.out, result
        return
    expected = {line - (1 - header_lines): reason
                for line, reason in plan.expected_reports().items()}
    good, bad = len(plan.good), len(expected)
    for attempt in (1, 2):
        # When the file is imported (twice)
        code, found, counts, err = import_file(ws, name, plan.data)
        # Then each bad row is named by its physical line and the counts add up
        assert set(found) == set(expected), (found, expected)
        for line, reason in expected.items():
            assert found[line].startswith(reason), (line, found[line], reason)
        assert sum(counts) == plan.data_rows
        assert counts == ((good, 0, 0, bad) if attempt == 1 else (0, 0, good, bad))
        assert code == (1 if bad else 0)
        assert ("not UTF-8" in err) == plan.latin
    # And every good row is stored with its values
    for row in plan.good:
        assert row.email is not None
        lead = ws.app.db.lead_by_email(row.email)
        assert lead is not None, row.email
        if plan.latin:
            continue
        for column, want in row.values.items():
            got = getattr(lead, column) if column in ("first_name", "company") \
                else lead.fields.get(column)
            same_nan = isinstance(want, float) and math.isnan(want) and math.isnan(got)
            assert got == want or same_nan, (column, got, want)
