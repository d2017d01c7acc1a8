"""Known bugs of `nurture leads import`, each a strict xfail test naming file, cause and fix
direction; the generators of ``test_import_csv.py`` and ``test_import_jsonl.py`` keep these
inputs out until the bug is fixed (then widen them)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bad_input._lead_files import import_file
from tests.bad_input._support import Workspace, fresh_domain, run_cli, workspace


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_doubled_quotes_in_a_csv_value_are_read_as_one_quote(ws: Workspace,
                                                             delimiter: str) -> None:
    # Given a spreadsheet's CSV whose company holds quotes (written as "")
    company = f'The "Best{delimiter} Co" ltd'
    email = f"q@{fresh_domain()}"
    data = (f"email{delimiter}company\n{email}{delimiter}"
            f'"{company.replace(chr(34), chr(34) * 2)}"\n').encode()
    # When imported
    code, found, counts, _ = import_file(ws, f"quotes-{fresh_domain()}.csv", data)
    # Then the row is kept with the company as written
    assert (code, found, counts) == (0, {}, (1, 0, 0, 0))
    lead = ws.app.db.lead_by_email(email)
    assert lead is not None and lead.company == company


@pytest.mark.parametrize("junk", ["1" * 5000, "[" * 100_000 + "]" * 100_000],
                         ids=["4300-digit-int", "deep-nesting"])
def test_json_lines_with_huge_numbers_or_deep_nesting_are_bad_rows(ws: Workspace,
                                                                   junk: str) -> None:
    email = f"ok@{fresh_domain()}"
    data = f'{{"email": "{email}"}}\n{{"email": "x@y.test", "n": {junk}}}\n'.encode()
    code, found, counts, _ = import_file(ws, f"deep-{fresh_domain()}.jsonl", data)
    assert code == 1 and list(found) == [2] and counts == (1, 0, 0, 1)


def test_a_value_over_the_csv_field_limit_does_not_become_new_rows(ws: Workspace) -> None:
    # Given a quoted note over 1 MiB whose text contains a line that looks like a row
    domain = fresh_domain()
    data = (f'email,note\nbig@{domain},"' + "y" * (1 << 20) + f'\nphantom@{domain},evil"\n'
            f"after@{domain},ok\n").encode()
    # When imported
    code, found, counts, _ = import_file(ws, f"huge-{domain}.csv", data)
    # Then the big row is rejected at line 2, the row after it is kept, and no lead is made up
    assert ws.app.db.lead_by_email(f"phantom@{domain}") is None
    assert (code, list(found), counts) == (1, [2], (1, 0, 0, 1))


def test_a_csv_file_with_cr_line_ends_is_read_by_its_header(ws: Workspace) -> None:
    domain = fresh_domain()
    data = f"email;first_name;note\rann@{domain};Ann;a\tb\rbob@{domain};Bob;c\td\r".encode()
    code, found, counts, _ = import_file(ws, f"mac-{domain}.csv", data)
    assert (code, found, counts) == (0, {}, (2, 0, 0, 0))


def test_a_utf8_bom_file_with_one_bad_byte_keeps_its_header(ws: Workspace) -> None:
    domain = fresh_domain()
    data = b"\xef\xbb\xbfemail,first_name\n" + f"ann@{domain},Ann\n".encode() + \
        f"bob@{domain},B".encode() + b"\xff\n"
    code, found, counts, _ = import_file(ws, f"bom-{domain}.csv", data)
    assert (code, found, counts) == (0, {}, (2, 0, 0, 0))


def test_a_truncated_utf8_sequence_at_the_end_is_warned_about(ws: Workspace) -> None:
    domain = fresh_domain()
    data = f"email,first_name\nann@{domain},Ann".encode() + b"\xe2\x82"
    code, found, counts, err = import_file(ws, f"cut-{domain}.csv", data)
    assert (code, found, counts) == (0, {}, (1, 0, 0, 0))
    assert "not UTF-8" in err


@pytest.mark.postgres
def test_long_values_on_postgresql_are_kept_or_rejected_without_losing_the_batch(
        tmp_path: Path, pg_url: str) -> None:
    with workspace(tmp_path, DATABASE__URL=pg_url) as pg:
        data = ("email,first_name,company\nok@pg.test,Ok,Fine\n"
                f"long@pg.test,L,{'c' * 300}\n").encode()
        code, found, counts, _ = import_file(pg, "long.csv", data)
        assert pg.app.db.lead_by_email("ok@pg.test") is not None
        assert sum(counts) == 2 and len(found) == counts[3]


@pytest.mark.parametrize("data", [b"name,\x1b]0;pwned\x07\x1b[2Jcompany\nx,y\n",
                                  b'{"email": "a@esc.test", "\\u001b[2J\\u001b[31m": 1}\n'],
                         ids=["csv-header", "json-key"])
def test_control_characters_from_the_file_are_not_echoed_to_the_terminal(ws: Workspace,
                                                                         data: bytes) -> None:
    path = ws.tmp / f"esc-{fresh_domain()}.{'csv' if data.startswith(b'name') else 'jsonl'}"
    path.write_bytes(data)
    result = run_cli("leads", "import", str(path))
    assert result.code == 1
    assert "\x1b" not in result.out + result.err and "\x07" not in result.out + result.err
