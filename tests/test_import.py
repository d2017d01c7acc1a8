"""`nurture leads import`: CSV and JSON lines; bad rows reported by line, good rows kept."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.workspace import email_template, make_app, write_campaign
from worker.adapters.db import models as m
from worker.cli import main


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(tmp_path)
    write_campaign(tmp_path / "campaigns", "hello", """
        name = "Hello"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        enroll_tags = ["lead"]
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        """, {"one.md": email_template("Hi")})
    for key, value in {"NURTURE_DATABASE__URL": app.settings.database.url,
                       "NURTURE_CAMPAIGNS__DIR": str(tmp_path / "campaigns"),
                       "NURTURE_TEMPLATES__DIR": str(tmp_path / "templates"),
                       "NURTURE_LOGGING__LEVEL": "ERROR"}.items():
        monkeypatch.setenv(key, value)
    return tmp_path, app


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str], str]:
    code = main(["leads", "import", *args])
    captured = capsys.readouterr()
    return code, captured.out.splitlines(), captured.err


def count(app, model) -> int:  # type: ignore[no-untyped-def]
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)))


def test_csv_with_bom_keeps_unknown_columns_and_is_idempotent(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    path = tmp / "leads.csv"
    path.write_bytes("\ufeffEmail,First Name,company,Industry,score\n"
                     "Ann@Acme.TEST,Ann,Acme,Software,42\n"
                     "bob@x.example,Björn,,Retail,\n".encode())
    # When imported twice
    assert run(capsys, str(path))[1] == ["imported 2, updated 0, unchanged 0, rejected 0"]
    assert run(capsys, str(path))[1] == ["imported 0, updated 0, unchanged 2, rejected 0"]
    # Then addresses are normalised and extra columns are fields (numbers as numbers)
    ann = app.db.lead_by_email("ann@acme.test")
    assert ann is not None and ann.first_name == "Ann" and ann.company == "Acme"
    assert ann.fields == {"industry": "Software", "score": 42}
    assert app.db.lead_by_email("bob@x.example").first_name == "Björn"  # type: ignore[union-attr]
    assert count(app, m.Lead) == 2


def test_bad_rows_are_reported_with_their_physical_line_and_good_rows_kept(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    path = tmp / "leads.csv"
    path.write_text(
        "email,first_name,timezone\n"                   # 1
        "good@acme.test,Good,\n"                        # 2
        "not-an-address,X,\n"                           # 3
        "\"multi@acme.test\",\"two\nlines\",\n"         # 4-5: CR/LF inside a name
        "tz@acme.test,T,Mars/Olympus\n"                 # 6
        "GOOD@acme.test,Again,\n"                       # 7: duplicate
        "a@acme.test,b,c,d\n"                           # 8: too many values
        "last@.test,L,\n"                               # 9
        "ok2@acme.test,Ok,Europe/Berlin\n")             # 10
    code, out, _ = run(capsys, str(path))
    assert code == 1
    assert out[:-1] == [
        f"{path}: line 3: email: not an email address: 'not-an-address'",
        f"{path}: line 4: first_name: contains control characters (CR, LF or NUL)",
        f"{path}: line 6: timezone: unknown time zone 'Mars/Olympus'",
        f"{path}: line 7: duplicate of line 2 (that row is kept)",
        f"{path}: line 8: 4 values but the header has 3 columns",
        out[5],
    ]
    assert out[5].startswith(f"{path}: line 9: email: not a valid email address")
    assert out[-1] == "imported 2, updated 0, unchanged 0, rejected 6"
    assert {lead for lead in ("good@acme.test", "ok2@acme.test") if app.db.lead_by_email(lead)} \
        == {"good@acme.test", "ok2@acme.test"}


def test_json_lines_and_test_domains(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    path = tmp / "leads.jsonl"
    path.write_text('{"email": "a@b.test", "fields": {"plan": "pro"}, "tags": ["lead"]}\n'
                    '{"email": "c@localhost"}\n{"email": "d@x.invalid"}\n{"email": "e@x.example"}\n'
                    "[1, 2]\n{broken\n")
    code, out, _ = run(capsys, str(path))
    assert out[-1] == "imported 4, updated 0, unchanged 0, rejected 2"
    assert out[0] == f"{path}: line 5: expected a JSON object of lead fields"
    assert out[1].startswith(f"{path}: line 6: not valid JSON")
    assert app.db.lead_by_email("a@b.test").fields == {"plan": "pro"}  # type: ignore[union-attr]
    # the tag "lead" enrols automatically (enroll_tags)
    assert [e.campaign for e in app.db.enrollments_of(app.db.lead_by_email("a@b.test").id)] == ["hello"]  # type: ignore[union-attr]


def test_latin1_file_is_read_with_a_warning(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    path = tmp / "latin.csv"
    path.write_bytes("email,first_name\nzoe@acme.test,Zoë Müller\n".encode("latin-1"))
    code, out, err = run(capsys, str(path))
    assert code == 0 and "not UTF-8; read as Windows-1252" in err
    assert app.db.lead_by_email("zoe@acme.test").first_name == "Zoë Müller"  # type: ignore[union-attr]


@pytest.mark.parametrize("content,message", [
    (b"", "empty file"), (b"\n\n  \n", "empty file"),
    (b"name,company\nAnn,Acme\n", "no 'email' column"),
])
def test_unusable_files_get_one_clear_message(workspace, capsys, content, message) -> None:  # type: ignore[no-untyped-def]
    tmp, _ = workspace
    path = tmp / "x.csv"
    path.write_bytes(content)
    code, _, err = run(capsys, str(path))
    assert code == 1 and message in err and "Traceback" not in err


def test_campaign_enrolment_and_suppressed_rows(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    app.db.add_suppression("gone@acme.test", "unsubscribed", "test")
    path = tmp / "l.csv"
    path.write_text("email\nnew@acme.test\ngone@acme.test\n")
    code, out, _ = run(capsys, str(path), "--campaign", "hello")
    assert out == [f"{path}: line 3: suppressed (unsubscribed)",
                   "imported 1, updated 0, unchanged 0, rejected 1"]
    run(capsys, str(path), "--campaign", "hello")
    assert count(app, m.Enrollment) == 1  # the second import enrols nobody twice
    assert main(["leads", "import", str(path), "--campaign", "nope"]) == 1
    assert "no campaign 'nope'" in capsys.readouterr().err


def test_a_50_mb_file_streams_through(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    # Given a 50 MB CSV (long notes column) with a bad row near the end
    tmp, app = workspace
    path = tmp / "big.csv"
    note = "n" * 2000
    with open(path, "w") as handle:
        handle.write("email,first_name,notes\n")
        for i in range(25_000):
            handle.write(f"lead{i}@big.test,Lead {i},{note}\n")
        handle.write("broken,x,y\n")
    assert path.stat().st_size > 50_000_000
    # When it is imported
    code, out, _ = run(capsys, str(path))
    # Then every good row is there and the bad one is named by line
    assert out == [f"{path}: line 25002: email: not an email address: 'broken'",
                   "imported 25000, updated 0, unchanged 0, rejected 1"]
    assert count(app, m.Lead) == 25_000


def test_import_prints_one_enrolment_summary_not_a_log_line_each(workspace, capsys,  # type: ignore[no-untyped-def]
                                                                 monkeypatch) -> None:
    # Given INFO logging and 30 leads tagged for a campaign
    tmp, _ = workspace
    monkeypatch.setenv("NURTURE_LOGGING__LEVEL", "INFO")
    path = tmp / "many.csv"
    path.write_text("email,tags\n" + "".join(f"l{n}@acme.test,lead\n" for n in range(30)))
    # When imported
    code, out, err = run(capsys, str(path))
    # Then stderr has one summary line for the enrolments, no line per enrolment
    assert code == 0 and out == ["imported 30, updated 0, unchanged 0, rejected 0"]
    assert "action=enrolled" not in err
    assert "enrolled 30 in hello" in err


def test_an_empty_cell_is_no_field_and_shows_nothing(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    tmp, app = workspace
    path = tmp / "empty.csv"
    path.write_text("email,industry,size\nann@acme.test,,12\n")
    assert run(capsys, str(path))[1] == ["imported 1, updated 0, unchanged 0, rejected 0"]
    lead = app.db.lead_by_email("ann@acme.test")
    assert lead is not None and lead.fields == {"size": 12}
    # And a field stored empty by an older version is not shown as None
    from worker.domain.leads import LeadInput
    app.db.upsert_leads([(LeadInput("old@acme.test", fields={"industry": None, "size": 3}),
                          "test")])
    assert main(["lead", "show", "old@acme.test"]) == 0
    shown = capsys.readouterr().out
    assert "None" not in shown and "fields: size=3" in shown


def test_lead_show_escapes_control_characters_stored_earlier(workspace, capsys) -> None:  # type: ignore[no-untyped-def]
    # Given a lead stored (by an older version) with terminal escapes in its data
    _, app = workspace
    from worker.domain.leads import LeadInput
    app.db.upsert_leads([(LeadInput("esc@acme.test", columns={"company": "\x1b[2J\x1b]0;x\x07Co"},
                                    fields={"note": "\x9b31m"}), "test")])
    # When shown, and listed
    assert main(["lead", "show", "esc@acme.test"]) == 0
    assert main(["leads", "list"]) == 0
    shown = capsys.readouterr().out
    # Then no control character reaches the terminal; they show as escapes
    assert not any(c in shown for c in "\x1b\x07\x9b"), repr(shown)
    assert "\\x1b[2J" in shown


def test_the_database_and_the_outbox_are_private_to_the_owner(tmp_path: Path) -> None:
    import os
    import stat
    old = os.umask(0o022)
    try:
        # Given a fresh workspace, a lead and one pass of the worker (mail to the Maildir)
        from tests.workspace import run_once
        app = make_app(tmp_path)
        write_campaign(tmp_path / "campaigns", "hi", """
            name = "Hi"
            kind = "sequence"
            sender = "Dana <dana@acme.example>"
            [[step]]
            id = "one"
            wait = "0"
            window = false
            template = "one.md"
            """, {"one.md": email_template("Hi")})
        app = make_app(tmp_path)
        app.service.intake({"email": "ann@acme.test"}, campaign="hi")
        run_once(app)
    finally:
        os.umask(old)
    # Then the database files are 600, the outbox folders 700 and its mails 600
    var = tmp_path / "var"
    dbs = [p for p in var.iterdir() if p.name in ("nurture.db", "nurture.db-wal", "nurture.db-shm")]
    assert dbs and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in dbs), \
        {p.name: oct(p.stat().st_mode) for p in dbs}
    outbox = var / "outbox"
    folders = [outbox, *(outbox / s for s in ("tmp", "new", "cur"))]
    assert all(stat.S_IMODE(f.stat().st_mode) == 0o700 for f in folders)
    mails = list((outbox / "new").iterdir())
    assert mails and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in mails)
