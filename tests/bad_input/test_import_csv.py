"""`nurture leads import` with hypothesis-built CSV files, and with any bytes at all.

Each example writes a file of good and bad rows whose fate is known in advance (kept, or
rejected for a stated reason), with CR, LF and NUL, very long values, bidi marks, BOMs in the
middle, quotes, all four delimiters, three kinds of line ends and, now and then, bytes that are
not UTF-8; then imports it twice through the real command and checks:

* exit code 0 or 1 (1 exactly when a row was rejected), never a traceback;
* every bad row reported once as ``FILE: line N: reason`` with its physical line (the header
  is line 1; a quoted value with line breaks spans several lines);
* every good row stored, with its values (when the file is UTF-8);
* ``imported + updated + unchanged + rejected`` equals the number of data rows;
* the second import changes nothing: ``imported 0, updated 0, unchanged G, rejected B``.

Known bugs (strict xfail tests in ``test_import_known_bugs.py``) are kept out of the
generators: doubled quotes inside a quoted value, CR line ends, a BOM together with bytes
that are not UTF-8, a truncated UTF-8 sequence at the very end.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._lead_files import (
    COLUMNS,
    COUNTS,
    EXAMPLES,
    INVALID_UTF8,
    LINE_BREAK,
    REPORT,
    Plan,
    Row,
    address,
    bad_emails,
    check_plan,
    limit_of,
    physical_start,
    stored_form,
    value,
)
from tests.bad_input._support import (
    CONTROL,
    PLACEHOLDER,
    TERMINAL,
    Workspace,
    examples,
    fresh_domain,
    run_cli,
)

# --- CSV -------------------------------------------------------------------------------------

def csv_field(text: str, delimiter: str, quote_all: bool) -> str:
    if quote_all or any(c in text for c in (delimiter, '"', "\r", "\n")):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def csv_plans(draw: st.DrawFn) -> Plan:
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    # Old-Mac CR line ends are a known bug (test_import_known_bugs.py); a lone CR inside a
    # quoted value is still generated, and counts as a line break (universal newlines).
    end = draw(st.sampled_from(["\n", "\r\n"]))
    quote_all = draw(st.booleans())
    latin = draw(st.integers(0, 4)) == 0
    domain = fresh_domain()
    # '"' stays out of values: doubled quotes are a known bug (test_import_known_bugs.py).
    exclude = '"'

    def record(values: list[str], line_end: str = end) -> str:
        return delimiter.join(csv_field(v, delimiter, quote_all) for v in values) + line_end

    rows: list[Row] = []
    kept: list[tuple[int, str]] = []
    suppressed: list[str] = []
    for number in range(draw(st.integers(0, 12))):
        kind = draw(st.sampled_from(["good", "good", "good", "bad_email", "control", "too_long",
                                     "extra", "short", "blank", "duplicate", "suppressed"]))
        written, email = address(draw, domain, number, latin)
        vals = [written] + [value(draw, exclude) for _ in COLUMNS[1:]]
        if kind == "good" or (kind == "duplicate" and not kept):
            if latin and draw(st.booleans()):
                vals[3] = vals[3][:50] + PLACEHOLDER
            rows.append(Row(record(vals), email=email, values={
                c: stored_form(v, c) for c, v in zip(COLUMNS[1:], vals[1:], strict=True)}))
            kept.append((len(rows) - 1, email))
        elif kind == "bad_email":
            vals[0] = draw(st.sampled_from(bad_emails(latin)))
            vals[1] = vals[1].strip() or "x"
            rows.append(Row(record(vals), reason="email: "))
        elif kind == "control":
            column = draw(st.integers(1, 3))
            at = draw(st.integers(0, len(vals[column])))
            # (Read as cp1252, the UTF-8 bytes of a C1 control are two letters.)
            controls = CONTROL + [t for t in TERMINAL if not (latin and "\x9b" in t)]
            vals[column] = vals[column][:at] + draw(st.sampled_from(controls)) + vals[column][at:]
            for other in range(column + 1, 4):
                vals[other] = vals[other][:limit_of(COLUMNS[other]) // 2]  # only the first problem
            rows.append(Row(record(vals), reason=f"{COLUMNS[column]}: contains control "
                            "characters ("))
        elif kind == "too_long":
            column = draw(st.integers(1, 3))
            limit = limit_of(COLUMNS[column])
            vals[column] = " " + "w" * draw(st.integers(limit + 1, limit + 3000)) + " "
            for other in range(column + 1, 4):
                vals[other] = vals[other][:limit_of(COLUMNS[other]) // 2]
            rows.append(Row(record(vals), reason=f"{COLUMNS[column]}: is longer than {limit} "
                            "characters"))
        elif kind == "extra":
            extra = draw(st.integers(1, 3))
            vals += ["x"] * extra
            rows.append(Row(record(vals), reason=f"{4 + extra} values but the header has 4 "
                            "columns"))
        elif kind == "short":
            width = draw(st.integers(1, 3))
            rows.append(Row(record(vals[:width]), email=email, values={
                c: stored_form(v, c) for c, v in zip(COLUMNS[1:width], vals[1:width],
                                                      strict=True)}))
            kept.append((len(rows) - 1, email))
        elif kind == "blank":
            blank = draw(st.sampled_from(["", " ", delimiter * 3, delimiter.join(['""'] * 2)]))
            rows.append(Row(blank + end, blank=True))
        elif kind == "duplicate":
            first, first_email = draw(st.sampled_from(kept))
            vals[0] = " " + first_email.upper()
            rows.append(Row(record(vals), reason=f"duplicate of line "
                            f"{physical_start(rows, first)} (that row is kept)"))
        else:  # suppressed
            suppressed.append(email)
            rows.append(Row(record(vals), reason="suppressed (unsubscribed)"))
    # (Not in a cp1252 file: a truncated UTF-8 sequence at the very end is a known bug.)
    unterminated = draw(st.booleans())
    if rows and unterminated and not rows[-1].blank and not latin:
        rows[-1].text = rows[-1].text[:-len(end)]  # no line end after the last row
    header = delimiter.join(csv_field(c, delimiter, quote_all) for c in COLUMNS) + end
    # A BOM together with bytes that are not UTF-8 is a known bug (test_import_known_bugs.py).
    bom = "\ufeff" if draw(st.booleans()) and not latin else ""
    data = (bom + header + "".join(r.text for r in rows)).encode()
    if latin:
        marks = data.count(PLACEHOLDER.encode())
        bad = [draw(st.sampled_from(INVALID_UTF8)) for _ in range(max(marks, 1))]
        pieces = data.split(PLACEHOLDER.encode())
        data = pieces[0] + b"".join(b + p for b, p in zip(bad, pieces[1:], strict=False))
        latin = marks > 0  # nothing marked: the file is UTF-8 after all
    return Plan(rows, suppressed, latin, data)



@EXAMPLES
@given(csv_plans())
def test_csv_files_keep_good_rows_and_name_bad_rows_by_line(ws: Workspace, plan: Plan) -> None:
    check_plan(ws, plan, ".csv")



@examples(60)
@given(st.sampled_from(["csv", "jsonl"]), st.binary(max_size=600),
       st.sampled_from(["email,first_name\n", "email;note\r\n", '"email"\t"x"\r', ""]))
def test_arbitrary_bytes_never_crash_the_import(ws: Workspace, suffix: str, junk: bytes,
                                                header: str) -> None:
    # Given any bytes at all, behind a header or not
    path = ws.tmp / f"junk-{fresh_domain()}.{suffix}"
    path.write_bytes(header.encode() + junk)
    # When imported
    result = run_cli("leads", "import", str(path))
    # Then the command answers with a user error or a counts line, never a traceback
    assert result.code in (0, 1), result
    assert "Traceback" not in result.err
    summary = COUNTS.match(result.lines[-1]) if result.lines else None
    if summary:
        counts = [int(g) for g in summary.groups()]
        reports = [REPORT.match(r) for r in result.lines[:-1]]
        assert all(reports) and len(reports) == counts[3]
        lines = [int(r["line"]) for r in reports if r]
        total = len(LINE_BREAK.findall(path.read_bytes().decode("cp1252", "replace"))) + 1
        assert all(1 <= n <= total for n in lines), (lines, total)
    else:
        last = result.err.rstrip("\n").split("\n")[-1]
        assert result.code == 1 and last.startswith("nurture: "), result
