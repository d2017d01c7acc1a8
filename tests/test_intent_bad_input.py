"""Reply intent, bad input end to end on the embedded default (Maildir, SQLite, `run --once`):
a date only in the quote or signature, referrals to the lead, to us or to a suppressed
address, twenty addresses, a date years ahead; and the not_now task due at the window's
first opening in the lead's zone (issue 14)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes
from email.utils import format_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from tests.workspace import email_template, make_app, outbox, run_once, write_campaign
from worker.adapters.db import models as m
from worker.app import App

LEAD = "kim@northwind.example"
NY = ZoneInfo("America/New_York")
WINDOW = """
    [window]
    days = ["mon", "tue", "wed", "thu", "fri"]
    hours = "09:00-17:00"
    timezone = "lead"
    default_timezone = "Europe/Berlin"
    """


def workspace(tmp: Path) -> App:
    """"sales" (no window, so its first mail goes now) hands a not_now to "later" (a window)."""
    write_campaign(tmp / "campaigns", "sales", """
        name = "Sales"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        not_now_campaign = "later"
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        """, {"one.md": email_template("Quick question")})
    write_campaign(tmp / "campaigns", "later", """
        name = "Later"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        [[step]]
        id = "back"
        wait = "0"
        template = "one.md"
        """ + WINDOW, {"one.md": email_template("Back")})
    # smtp.address is at another domain than the one the lead answered: still ours
    app = make_app(tmp, NOTIFY__DEFAULT_OWNER="owner@acme.example",
                   SMTP__ADDRESS="bounces@acme-mail.example")
    app.service.intake({"email": LEAD, "company": "Northwind", "timezone": "America/New_York"},
                       campaign="sales")
    assert run_once(app) == 0
    return app


def reply(app: App, tmp: Path, body: str, name: str = "reply.eml") -> None:
    """A plain reply from the lead threaded onto our mail, dropped into the inbox; one pass."""
    [sent] = [message_from_bytes(raw) for raw in outbox(tmp)][:1]
    raw = (f"From: Kim <{LEAD}>\r\nTo: Dana <dana@acme.example>\r\nSubject: Re: Quick question\r\n"
           f"Date: {format_datetime(datetime.now(UTC))}\r\nMessage-ID: <{name}@northwind.example>\r\n"
           f"In-Reply-To: {sent['Message-ID']}\r\nReferences: {sent['Message-ID']}\r\n"
           "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body.replace("\n", "\r\n"))
    new = tmp / "var" / "inbox" / "new"
    new.mkdir(parents=True, exist_ok=True)
    (new / name).write_bytes(raw.encode())
    assert run_once(app) == 0


def tasks_of(app: App, kind: str) -> list[m.Touch]:
    with app.db.session() as s:
        return list(s.scalars(select(m.Touch).where(m.Touch.task_kind == kind)))


def leads(app: App) -> set[str]:
    with app.db.session() as s:
        return set(s.scalars(select(m.Lead.email)))


def test_not_now_task_is_due_at_the_windows_first_opening_in_the_leads_zone(tmp_path: Path
                                                                              ) -> None:
    app = workspace(tmp_path)
    year = datetime.now(UTC).year + 1
    reply(app, tmp_path, f"Not right now. Please get back to me on 15 March {year}.\n\nKim\n")
    [task] = tasks_of(app, "not_now")
    # 09:00 in New York that day, as the "later" campaign's first step (not midnight UTC)
    opening = datetime(year, 3, 15, 9, 0, tzinfo=NY)
    assert task.due_at == opening.astimezone(UTC)
    lead = app.db.lead_by_email(LEAD)
    assert lead is not None
    [later] = app.db.enrollments_of(lead.id, "later")
    assert later.next_due_at == task.due_at


def test_a_date_only_in_the_quote_or_signature_is_no_not_now_date(tmp_path: Path) -> None:
    app = workspace(tmp_path)
    reply(app, tmp_path, "Not right now, maybe later.\n\nBest regards,\nKim\nNorthwind | Office "
          "closed 24 Dec to 4 Jan\n\nOn Mon, 2 Nov 2026, Dana wrote:\n> Could we talk on 15 March 2027?\n")
    with app.db.session() as s:
        [row] = s.scalars(select(m.Inbound))
        assert (row.subclass, row.return_date) == ("not_now", None)
    [task] = tasks_of(app, "not_now")
    assert task.due_at is not None
    default = date.today() + timedelta(days=90)
    assert default <= task.due_at.astimezone(NY).date() <= default + timedelta(days=3)


def test_referrals_to_the_lead_to_us_or_to_a_suppressed_address_create_nothing(
        tmp_path: Path) -> None:
    app = workspace(tmp_path)
    app.db.add_suppression("gone@northwind.example", "unsubscribed", "test")
    before = leads(app)
    reply(app, tmp_path, f"Please talk to {LEAD}, to bounces@acme-mail.example, to "
          "dana@acme.example or to gone@northwind.example about this.\n\nKim\n")
    assert leads(app) == before
    assert tasks_of(app, "referral") == []


def test_twenty_addresses_make_at_most_five_leads(tmp_path: Path) -> None:
    app = workspace(tmp_path)
    before = leads(app)
    names = ", ".join(f"person{i}@firm{i}.example" for i in range(20))
    reply(app, tmp_path, f"Please contact my colleagues instead: {names}.\n\nKim\n")
    new = leads(app) - before
    assert 1 <= len(new) <= 5
    assert len(tasks_of(app, "referral")) == len(new)


def test_a_not_now_date_years_ahead_is_capped_at_two_years(tmp_path: Path) -> None:
    app = workspace(tmp_path)
    reply(app, tmp_path, f"Not now. Please get back to me on 1 June {datetime.now(UTC).year + 6}.\n\nKim\n")
    [task] = tasks_of(app, "not_now")
    assert task.due_at is not None
    latest = datetime.now(UTC) + timedelta(days=730 + 4)  # and the window's next opening
    assert datetime.now(UTC) + timedelta(days=365) < task.due_at <= latest
