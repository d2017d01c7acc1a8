"""`lead show`, `tasks`, `status`, `export` and `forget` on a database filled by the real
worker (the scenario of ``tests/test_report.py``: real SMTP server, real Dovecot, fake clock).

Tests that change data work on a copy of the scenario's SQLite database.
"""

from __future__ import annotations

import io
import json
import sqlite3
from contextlib import redirect_stdout
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.scenario import T0, FakeClock, Scenario
from worker.app import App
from worker.commands.status import show_status
from worker.config import load_settings

pytestmark = pytest.mark.dovecot



def show(sc: Scenario, email: str, config: Path | None = None) -> dict[str, Any]:
    code, out, err = sc.cli("lead", "show", email, "--json", config=config)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def every_text(db: Path) -> str:
    """Every value of every row of every table, lower-cased, as one text."""
    conn = sqlite3.connect(db)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return "\n".join(repr(row).lower() for t in tables
                         for row in conn.execute(f'SELECT * FROM "{t}"'))
    finally:
        conn.close()


# --- lead show ----------------------------------------------------------------------------------

def test_lead_show_json_has_every_touch_and_inbound_message(scenario: Scenario) -> None:
    # When alice is shown (she answered her first mail after the second one arrived)
    data = show(scenario, "ALICE@a.example")
    # Then the object carries the spec's keys
    assert data["email"] == "alice@a.example" and data["suppressed"] is None
    [enrolment] = data["enrollments"]
    assert enrolment["campaign"] == "drip" and enrolment["status"] == "replied"
    assert enrolment["next_step"] is None and enrolment["next_due_at"] is None
    # and every touch with the Message-ID the SMTP server received
    sent = [m["message_id"] for m in scenario.sent("alice@a.example")]
    assert [(t["step"], t["kind"], t["message_id"]) for t in enrolment["touches"]] == \
        [("hello", "email", sent[0]), ("follow-up", "email", sent[1]),
         ("reply:interested", "task", None)]  # her reply is interested: the owner's task
    assert all(t["sent_at"].startswith("2026-03-0") for t in enrolment["touches"])
    # and her reply, with its class, how it matched, the action and the touch it answered
    [reply] = data["inbound"]
    assert (reply["class"], reply["subclass"], reply["matched_by"]) == ("human", "interested",
                                                                       "in_reply_to")
    assert reply["intent"] == "interested" and isinstance(reply["id"], int)
    assert reply["action"].startswith("replied")
    assert reply["answered"] == {"campaign": "drip", "step": "hello", "touch_number": 1}
    assert reply["received_at"] == (T0 + timedelta(days=2, hours=1)).isoformat()


def test_lead_show_out_of_office_bounce_and_waiting_task(scenario: Scenario) -> None:
    # When carol (out of office, then her sequence went on) and dave (bounced) are shown
    carol, dave = show(scenario, "carol@c.example"), show(scenario, "dave@d.example")
    # Then carol's out-of-office is an auto-reply that moved her next step
    [ooo] = carol["inbound"]
    assert (ooo["class"], ooo["subclass"]) == ("auto_reply", "ooo")
    assert ooo["action"].startswith("postponed")
    # and she now waits for her owner's call task before the last step
    [enrolment] = carol["enrollments"]
    assert (enrolment["status"], enrolment["next_step"], enrolment["next_due_at"]) == \
        ("active", "last", None)
    assert [t["kind"] for t in enrolment["touches"]] == ["email", "email", "task"]
    # and dave's bounce report suppressed him
    assert dave["suppressed"] == "bounced"
    [bounce] = dave["inbound"]
    assert (bounce["class"], bounce["subclass"], bounce["matched_by"]) == \
        ("bounce", "hard", "dsn_message_id")
    assert dave["enrollments"][0]["status"] == "bounced"


def test_lead_show_timeline_is_in_the_leads_zone(scenario: Scenario) -> None:
    # When gina (Europe/Berlin) is shown as a timeline
    code, out, err = scenario.cli("lead", "show", "gina@g.example")
    # Then the first mail, sent at 09:00 UTC, shows at 10:00 CET, and so does the rest
    assert code == 0, err
    assert "Timeline (Europe/Berlin)" in out
    sent = next(line for line in out.splitlines() if "email sent" in line and "hello" in line)
    assert "2026-03-02 10:00 CET" in sent
    assert "task call" in out and "UTC" not in out.replace("UTC)", "")


def test_lead_show_timeline_lists_replies_with_class_and_action(scenario: Scenario) -> None:
    code, out, err = scenario.cli("lead", "show", "bob@b.example")
    assert code == 0, err
    # (the reply's id, to reclassify it by, and its intent)
    [reply] = show(scenario, "bob@b.example")["inbound"]
    assert f"mail in #{reply['id']}: human/interested" in out
    assert "replied: 1 enrolment(s)" in out
    assert "drip / hello (touch #1)" in out and "active -> replied" in out


def test_lead_show_unknown_and_erased_leads_are_user_errors(scenario: Scenario) -> None:
    code, _, err = scenario.cli("lead", "show", "nobody@x.example")
    assert code == 1 and "no lead 'nobody@x.example'" in err
    code, _, err = scenario.cli("lead", "show", "not an address")
    assert code == 1 and "Traceback" not in err
    # zed was refused at SMTP time: the lead is still there, and shown as suppressed
    assert show(scenario, "zed@z.example")["suppressed"] == "bounced"


# --- tasks --------------------------------------------------------------------------------------

def test_task_holds_the_sequence_until_it_is_done(scenario: Scenario) -> None:
    # Given frank's call task (wait_for_task = true), open on day 10 while his last step
    # had been due since day 4
    day10 = [t for t in scenario.scripted["open_tasks_day_10"] if t["kind"] == "call"]
    assert sorted(t["lead"] for t in day10) == ["carol@c.example", "frank@f.example",
                                               "gina@g.example"]
    assert all(t["owner"] == "rep@acme.example" and t["kind"] == "call" and
               t["blocks_sequence"] for t in day10)
    # Then nothing more had been sent to him before the rep marked it done
    assert scenario.scripted["frank_mails_before_done"] == 2
    # and once done (`tasks done ID --note`), the last step and the newsletter went out
    assert [m["subject"] for m in scenario.sent("frank@f.example")] == \
        ["Your report", "Re: Your report", "Last note", "Spring news"]
    frank = show(scenario, "frank@f.example")
    task = next(t for e in frank["enrollments"] for t in e["touches"] if t["kind"] == "task")
    assert task["state"] == "done" and task["note"] == "left a voicemail"
    assert [(e["campaign"], e["status"]) for e in frank["enrollments"]] == \
        [("drip", "completed"), ("news", "active")]


def test_tasks_by_owner_and_due_date(scenario: Scenario) -> None:
    # When the rep lists open tasks (any case of the address)
    code, out, err = scenario.cli("tasks", "--owner", "REP@acme.example", "--json")
    assert code == 0, err
    tasks = json.loads(out)["tasks"]
    # Then the interested replies' tasks come first (issue 14), then gina's (older) before
    # carol's; frank's done task is gone
    interested = [t for t in tasks if t["kind"] == "interested"]
    assert interested and tasks[:len(interested)] == interested
    calls = tasks[len(interested):]
    assert [t["lead"] for t in calls] == ["gina@g.example", "carol@c.example"]
    assert calls[0]["due_at"] < calls[1]["due_at"]
    # and another owner has none
    code, out, _ = scenario.cli("tasks", "--owner", "other@acme.example")
    assert code == 0 and "No open tasks for other@acme.example" in out
    # and the table names the lead, the step and that the sequence waits
    code, out, _ = scenario.cli("tasks")
    assert "rep@acme.example: 4 open" in out and "call (sequence waits)" in out
    assert "gina@g.example" in out and "drip / call" in out


def test_tasks_done_errors(scenario: Scenario) -> None:
    frank_task = next(t["id"] for t in scenario.scripted["open_tasks_day_10"]
                      if t["lead"] == "frank@f.example")
    code, _, err = scenario.cli("tasks", "done", str(frank_task))
    assert code == 1 and "already done" in err
    code, _, err = scenario.cli("tasks", "done", "99999")
    assert code == 1 and "no task 99999" in err
    code, _, err = scenario.cli("tasks", "done")
    assert code == 1 and "give the task's ID" in err


# --- status -------------------------------------------------------------------------------------

def status_of(sc: Scenario, config: Path, clock: FakeClock) -> dict[str, Any]:
    app = App(load_settings(config, sc.env()), clock=clock)
    out = io.StringIO()
    with redirect_stdout(out):
        assert show_status(app, as_json=True) == 0
    app.db.engine.dispose()
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def test_status_shows_backlog_caps_inbox_and_workers(scenario: Scenario, tmp_path: Path) -> None:
    # Given a copy of the scenario with caps on the default mailbox, half an hour after the
    # newsletter issue went out to frank (the last mail of the scenario)
    config = scenario.clone(tmp_path)
    text = config.read_text().replace("connections = 2\n",
                                      "connections = 2\nhourly_cap = 10\ndaily_cap = 1\n")
    config.write_text(text)
    clock = FakeClock(scenario.clock.now() + timedelta(minutes=30))
    # When status is asked for
    data = status_of(scenario, config, clock)
    # Then the mailbox shows its sends against its caps
    [box] = data["mailboxes"]
    assert (box["name"], box["sent_last_hour"], box["hourly_cap"]) == ("default", 1, 10)
    assert (box["sent_last_day"], box["daily_cap"], box["at_cap"]) == (1, 1, True)
    # and the inbox's last check, and the suppression list (zed, dave, erin)
    assert [(i["mailbox"], i["folder"]) for i in data["inbox"]] == [("default", "INBOX")]
    assert data["inbox"][0]["last_success_at"] is not None
    # (two call tasks and the tasks of alice's and bob's interested replies)
    assert data["suppressed"] == 3 and data["open_tasks"] == 4
    assert data["database"]["backend"] == "sqlite" and data["workers_alive"] == 0
    # When a worker heartbeats and time moves on
    app = App(load_settings(config, scenario.env()), clock=clock)
    app.db.register_worker("host-1:42:abc", "host-1", 42)
    app.db.engine.dispose()
    # Then it is alive within three heartbeats, gone after
    assert [w["id"] for w in status_of(scenario, config, clock)["workers"]] == ["host-1:42:abc"]
    later = FakeClock(clock.now() + timedelta(seconds=16))
    assert status_of(scenario, config, later)["workers_alive"] == 0
    # and nothing is due: carol's and gina's sequences wait for their owner's tasks
    assert data["due"] == {"count": 0, "oldest_due_at": None, "oldest_overdue_s": None}


def test_status_backlog_and_terminal_output(scenario: Scenario, tmp_path: Path) -> None:
    # Given a lead enrolled now, due at once, and no worker running
    config = scenario.clone(tmp_path)
    clock = FakeClock(scenario.clock.now() - timedelta(minutes=5))
    app = App(load_settings(config, scenario.env()), clock=clock)
    app.service.intake({"email": "new@n.example"}, campaign="quiet")
    app.db.engine.dispose()
    clock.at = scenario.clock.now()
    # When status is printed as JSON and for a person
    data = status_of(scenario, config, clock)
    # Then the backlog shows it and how late it is
    assert data["due"]["count"] == 1 and data["due"]["oldest_overdue_s"] == 300.0
    code, out, err = scenario.cli("status", config=config)
    assert code == 0, err
    assert "due now     1 enrolment(s)" in out and "Sending" in out and "Inbox" in out


# --- export and forget --------------------------------------------------------------------------

def test_export_prints_everything_held(scenario: Scenario) -> None:
    # When bob's data is exported
    code, out, err = scenario.cli("export", "bob@b.example")
    assert code == 0, err
    data = json.loads(out)
    # Then the lead row with its source and consent, enrolments, touches, changes, inbound
    # messages (with their text) and the notifications that forwarded his reply
    lead = data["lead"]
    assert lead["email"] == "bob@b.example" and lead["source"] == "import:leads.csv"
    assert lead["consent_at"] == T0.isoformat() and lead["fields"] == {}
    assert [e["status"] for e in data["enrollments"]] == ["replied"]
    assert [t["step_id"] for t in data["touches"]] == ["hello", "reply:interested"]
    assert {c["new"] for c in data["status_changes"]} == {"active", "replied"}
    assert "Tuesday" in data["inbound"][0]["excerpt"]
    assert data["notifications"] and all("bob@b.example" in n["subject"]
                                         for n in data["notifications"])
    assert data["suppression"] == [] and data["suppressed"] is None
    # and a suppressed lead's entry is there too
    code, out, _ = scenario.cli("export", "dave@d.example")
    assert json.loads(out)["suppression"][0]["reason"] == "bounced"
    # and an address nothing is stored about is a user error
    code, _, err = scenario.cli("export", "nobody@x.example")
    assert code == 1 and "nothing is stored" in err


@pytest.mark.parametrize("email, text", [("erin@e.example", "please unsubscribe me"),
                                         ("bob@b.example", "call me on tuesday")])
def test_forget_leaves_only_a_hash(scenario: Scenario, tmp_path: Path, email: str,
                                   text: str) -> None:
    # Given a copy of the database where the address appears (erin also has a plain-text
    # suppression entry from her unsubscribe; bob's reply was forwarded to his owner)
    config = scenario.clone(tmp_path)
    db = tmp_path / "nurture.db"
    assert email in every_text(db) and text in every_text(db)
    # When the lead is forgotten
    code, out, err = scenario.cli("forget", email, config=config)
    # Then the address and what the person wrote are nowhere in the database
    assert code == 0, err
    assert "lead erased" in out
    everything = every_text(db)
    assert email not in everything and text not in everything
    app = scenario.app(config)
    assert app.db.lead_by_email(email) is None
    # but the keyed hash is on the suppression list, so the address is never mailed again
    row = app.db.suppression_row(email)
    assert row is not None and row.email is None and row.reason == "erased"
    assert app.db.email_hash(email) in everything
    # and the rest of the report is unchanged for other leads
    assert app.db.lead_by_email("alice@a.example") is not None
    app.db.engine.dispose()


def test_forget_then_import_again_sends_nothing(scenario: Scenario, tmp_path: Path) -> None:
    # Given erin forgotten on a copy of the database
    config = scenario.clone(tmp_path)
    assert scenario.cli("forget", "erin@e.example", config=config)[0] == 0
    before = len(scenario.sent("erin@e.example"))
    # When she is imported again, enrolled by hand, and a worker pass runs
    csv = tmp_path / "again.csv"
    csv.write_text("email,first_name\nErin@E.example,Erin\nnew@n.example,New\n")
    code, out, _ = scenario.cli("leads", "import", str(csv), "--campaign", "drip",
                                config=config)
    # Then the import rejects her row with the reason, and keeps the good one
    assert code == 1
    assert f"{csv}: line 2: suppressed (erased)" in out
    assert "imported 1, updated 0, unchanged 0, rejected 1" in out
    code, _, err = scenario.cli("enroll", "erin@e.example", "--campaign", "drip",
                                config=config)
    assert code == 1 and "suppressed" in err
    scenario.run_pass(config)
    # and nothing more went to her, while the new lead got its first mail
    assert len(scenario.sent("erin@e.example")) == before
    assert [m["subject"] for m in scenario.sent("new@n.example")] == ["Your report"]


def test_forget_an_address_without_a_lead(scenario: Scenario, tmp_path: Path) -> None:
    # Given an address that was never imported
    config = scenario.clone(tmp_path)
    # When it is forgotten (a request can come before any import)
    code, out, _ = scenario.cli("forget", "someone@s.example", config=config)
    # Then its hash is suppressed, and a later import refuses it
    assert code == 0 and "no lead stored" in out
    csv = tmp_path / "s.csv"
    csv.write_text("email\nsomeone@s.example\n")
    code, out, _ = scenario.cli("leads", "import", str(csv), config=config)
    assert code == 1 and "suppressed (erased)" in out


# --- the same queries on PostgreSQL -------------------------------------------------------------

def pg_everything(url: str) -> str:
    import psycopg
    from psycopg import sql
    with psycopg.connect(url) as conn:
        tables = [r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(repr(row).lower() for t in tables for row in conn.execute(
            sql.SQL("SELECT * FROM {}").format(sql.Identifier(t))))


@pytest.mark.postgres
def test_show_export_status_and_forget_on_postgresql(scenario: Scenario, pg_url: str,
                                                     tmp_path: Path) -> None:
    # Given a PostgreSQL database with a lead who wrote to us, was unsubscribed, had a reply
    # forwarded and was posted through the API
    config = scenario.write_config(pg_url, tmp_path / "pg.toml")
    assert scenario.cli("init", config=config)[0] == 0
    csv = tmp_path / "l.csv"
    csv.write_text("email,first_name,owner\nPia@P.example,Pia,rep@acme.example\n")
    assert scenario.cli("leads", "import", str(csv), "--campaign", "drip", config=config)[0] == 0
    app = scenario.app(config)
    lead = app.db.lead_by_email("pia@p.example")
    assert lead is not None
    app.db.record_inbound({
        "mailbox": "default", "folder": "INBOX", "uid": "1", "uidvalidity": 1,
        "fingerprint": "f" * 64, "message_id": "m1@p.example", "received_at": scenario.clock.now(),
        "from_addr": "pia@p.example", "subject": "Re: hi", "cls": "human", "subclass": None,
        "reason": "written by a person", "lead_id": lead.id, "matched_by": "from_address",
        "action": "replied", "excerpt": "Call me, Pia", "size": 10})
    app.db.add_notification("reply", "rep@acme.example", "Reply from pia@p.example", "Pia wrote")
    with app.db.session() as s:
        from worker.adapters.db import models as m
        s.add(m.IdempotencyKey(key="k1", status=201, created_at=scenario.clock.now(),
                               response={"email": "pia@p.example", "created": True}))
    app.db.register_worker("pg-host:1:aa", "pg-host", 1)
    app.db.engine.dispose()
    assert scenario.cli("unsubscribe", "pia@p.example", config=config)[0] == 0
    # When she is shown, exported, and status is asked for
    shown = show(scenario, "pia@p.example", config=config)
    code, out, _ = scenario.cli("export", "pia@p.example", config=config)
    exported = json.loads(out)
    code, out, _ = scenario.cli("status", "--json", config=config)
    status = json.loads(out)
    # Then PostgreSQL answers like SQLite
    assert shown["suppressed"] == "unsubscribed"
    assert [(i["class"], i["matched_by"]) for i in shown["inbound"]] == [("human", "from_address")]
    assert exported["notifications"][0]["subject"] == "Reply from pia@p.example"
    assert status["database"]["backend"] == "postgresql" and status["workers_alive"] == 1
    assert status["suppressed"] == 1
    code, out, _ = scenario.cli("report", "--json", "--campaign", "drip", config=config)
    assert json.loads(out)["campaigns"][0]["funnel"]["enrolled"] == 1
    # When she is forgotten
    assert "pia@p.example" in pg_everything(pg_url)
    code, out, err = scenario.cli("forget", "pia@p.example", config=config)
    # Then her address and words are gone from every table; only the hash stays
    assert code == 0, err
    everything = pg_everything(pg_url)
    assert "pia@p.example" not in everything and "call me, pia" not in everything
    app = scenario.app(config)
    assert app.db.suppression_for("pia@p.example") == "erased"
    app.db.engine.dispose()
