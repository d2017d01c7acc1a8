"""A stray quote in a CSV file (issue 12, item 5) and header names that collide (item 9).

A quoted value that runs past its line swallowed every row after it (``imported 0 ...
rejected 1`` for a stray quote above 500 good rows). Now the row with the stray quote is
reported at its physical line and the lines after it are read again; a genuine multi-line
quoted value (strict CSV) is still one row.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._lead_files import import_file
from tests.bad_input._support import Workspace, examples, fresh_domain, run_cli

STRAY = "a quoted value is not closed on its line"


@pytest.mark.parametrize("company", ['"Acme', '"', '"Acme, Inc'])
def test_a_stray_quote_above_500_rows_costs_one_row(ws: Workspace, company: str) -> None:
    # Given a stray quote on the first row, then 500 good rows
    domain = fresh_domain()
    rows = [f"sq0@{domain},Ann,{company}"] + [f"ok{n}@{domain},N{n},Co{n}" for n in range(500)]
    data = ("email,first_name,company\n" + "\n".join(rows) + "\n").encode()
    # When imported
    code, found, counts, _ = import_file(ws, f"stray-{domain}.csv", data)
    # Then that row alone is refused, at its line, and the 500 after it are kept
    assert code == 1 and counts == (500, 0, 0, 1)
    assert list(found) == [2] and found[2].startswith(STRAY)
    assert ws.app.db.lead_by_email(f"sq0@{domain}") is None
    assert ws.app.db.lead_by_email(f"ok499@{domain}") is not None


@st.composite
def files_with_stray_quotes(draw: st.DrawFn) -> tuple[str, set[int], list[str], set[int]]:
    """(text, lines with a stray quote, addresses kept, lines of multi-line values: one
    record each, refused for the line break in the value)."""
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    end = draw(st.sampled_from(["\n", "\r\n"]))
    domain = fresh_domain()
    lines = [delimiter.join(["email", "first_name", "company"])]
    stray: set[int] = set()
    kept: list[str] = []
    multi: set[int] = set()
    for n in range(draw(st.integers(1, 25))):
        kind = draw(st.sampled_from(["plain", "plain", "quoted", "multiline", "stray"]))
        email = f"r{n}@{domain}"
        line = len(lines) + 1 + sum(x.count("\n") for x in lines)
        if kind == "stray":
            # (Not a bare '"' at the end of a line: after an earlier stray quote it closes
            # that value and the two make valid CSV, one record over several lines.)
            company = draw(st.sampled_from(['"Acme', '"Acme Inc', '"Acme""', '"Acme"" Inc']))
            stray.add(line)
            lines.append(delimiter.join([email, "Ann", company]))
            continue
        if kind == "quoted":  # a proper quoted value holding the delimiter
            company = f'"Co{delimiter} {n}"'
        elif kind == "multiline":  # a proper quoted value over two lines
            company = f'"Co {n}{end}floor 2"'
            multi.add(line)
            lines.append(delimiter.join([email, f"N{n}", company]))
            continue
        else:
            company = f"Co {n}"
        lines.append(delimiter.join([email, f"N{n}", company]))
        kept.append(email)
    return end.join(lines) + end, stray, kept, multi


@examples(40)
@given(files_with_stray_quotes())
def test_stray_quotes_are_reported_and_the_rows_after_them_kept(
        ws: Workspace, plan: tuple[str, set[int], list[str], set[int]]) -> None:
    text, stray, kept, multi = plan
    # When a file with stray quotes among good rows is imported
    code, found, counts, _ = import_file(ws, f"strays-{fresh_domain()}.csv", text.encode())
    # Then each stray quote is reported at its own line and every other row is kept (a
    # genuine quoted value over two lines stays one record: refused for its line break)
    assert set(found) == stray | multi, (found, stray, multi)
    assert all(found[line].startswith(STRAY) for line in stray)
    assert all(found[line].startswith("company: contains control") for line in multi)
    assert counts == (len(kept), 0, 0, len(stray) + len(multi))
    assert code == (1 if stray or multi else 0)
    for email in kept:
        assert ws.app.db.lead_by_email(email) is not None, email


def test_columns_that_name_one_field_are_refused_at_the_header(ws: Workspace) -> None:
    # Given a header whose names normalise to the same field (A-b, a_b, a b)
    domain = fresh_domain()
    path = ws.tmp / f"collide-{domain}.csv"
    path.write_text(f"email,A-b,a_b,a b\nx@{domain},1,2,3\n")
    # When imported
    result = run_cli("leads", "import", str(path))
    # Then the file is refused at line 1 naming the colliding columns; nothing is merged
    assert result.code == 1 and not result.out
    assert "line 1: columns 'A-b' and 'a_b' name the same field 'a_b'" in result.err, result
    assert ws.app.db.lead_by_email(f"x@{domain}") is None


def test_json_lines_with_colliding_names_are_bad_rows(ws: Workspace) -> None:
    domain = fresh_domain()
    data = (f'{{"email": "a@{domain}", "Industry": "x", "industry": "y"}}\n'
            f'{{"email": "b@{domain}", "fields": {{"a-b": 1, "a_b": 2}}}}\n'
            f'{{"email": "c@{domain}", "industry": "z"}}\n').encode()
    code, found, counts, _ = import_file(ws, f"collide-{domain}.jsonl", data)
    assert code == 1 and counts == (1, 0, 0, 2) and set(found) == {1, 2}
    assert "names the same field as 'Industry'" in found[1]
    assert "names the same field as 'a-b'" in found[2]
    lead = ws.app.db.lead_by_email(f"c@{domain}")
    assert lead is not None and lead.fields == {"industry": "z"}
