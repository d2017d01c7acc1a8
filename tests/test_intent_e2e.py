"""Reply intent end to end on the embedded default (Maildir in and out, SQLite, `run --once`
passes): real replies of each intent from ../shared/intent, threaded onto the mails we sent,
then the owner's tasks, enrolments and referred leads (issue 14)."""

from __future__ import annotations

from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.workspace import email_template, make_app, outbox, run_once, write_campaign
from worker.adapters.db import models as m
from worker.app import App

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "intent" / "messages"
#: One reply per intent (file, the lead who wrote it).
REPLIES = {
    "interested": ("003-interested-en.eml", "dporter@maplewood-academy.example"),
    "not_now": ("013-not_now-en.eml", "fdeluca@deluca-law.example"),
    "not_interested": ("001-not_interested-en.eml", "neil@adamslawoffice.example"),
    "referral": ("006-referral-it.eml", "g.colombo@colombo-logistica.example"),
    "wrong_person": ("016-wrong_person-de.eml", "m.braun@braun-fensterbau.example"),
}
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/intent is absent")


def workspace(tmp: Path) -> App:
    campaigns = tmp / "campaigns"
    write_campaign(campaigns, "sales", """
        name = "Sales"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        on_finish = "news"
        not_now_campaign = "later"
        referral_campaign = "later"
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        [[step]]
        id = "two"
        wait = "30d"
        template = "one.md"
        """, {"one.md": email_template("Quick question")})
    write_campaign(campaigns, "later", """
        name = "Later"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        [[step]]
        id = "back"
        wait = "0"
        template = "one.md"
        """, {"one.md": email_template("You asked me to get back to you")})
    write_campaign(campaigns, "news", """
        name = "News"
        kind = "newsletter"
        sender = "Dana at Acme <dana@acme.example>"
        """, {})
    return make_app(tmp, NOTIFY__DEFAULT_OWNER="owner@acme.example")


def swapped(name: str, message_id: str) -> bytes:
    """The corpus reply threaded onto our mail: the placeholder swapped in the header block
    only (per the corpus README)."""
    raw = (CORPUS / name).read_bytes()
    head, sep, rest = raw.partition(b"\n\n")
    return head.replace(b"step-PLACEHOLDER@nurture.test",
                        message_id.strip("<>").encode()) + sep + rest


def drop_reply(tmp: Path, name: str, message_id: str) -> None:
    """A corpus reply threaded onto our mail, dropped into the Maildir inbox."""
    raw = swapped(name, message_id)
    new = tmp / "var" / "inbox" / "new"
    new.mkdir(parents=True, exist_ok=True)
    # The interested reply is read last: its task must still be listed first.
    (new / f"{'zz' if 'interested-' in name and 'not_' not in name else ''}{name}").write_bytes(raw)


def test_each_intent_leads_to_its_next_step(tmp_path: Path) -> None:
    # Given five leads who got the first mail of "sales"
    app = workspace(tmp_path)
    for _intent, (_file, address) in REPLIES.items():
        app.service.intake({"email": address, "company": address.split("@")[1]},
                           campaign="sales")
    assert run_once(app) == 0
    sent = {message_from_bytes(raw)["To"]: message_from_bytes(raw)["Message-ID"]
            for raw in outbox(tmp_path)}
    # When each answers with a reply of one intent
    for _intent, (file, address) in REPLIES.items():
        drop_reply(tmp_path, file, next(v for k, v in sent.items() if address in k))
    assert run_once(app) == 0
    # Then every reply carries its intent and every sequence stopped as replied
    with app.db.session() as s:
        inbound = {r.from_addr: r for r in s.scalars(select(m.Inbound))}
        tasks = list(s.scalars(select(m.Touch).where(m.Touch.kind == "task")))
    for intent, (_file, address) in REPLIES.items():
        assert (inbound[address].cls, inbound[address].subclass) == ("human", intent)
        lead = app.db.lead_by_email(address)
        assert lead is not None
        assert app.db.enrollments_of(lead.id, "sales")[0].status == "replied"
    by_kind = {t.task_kind: t for t in tasks}
    # interested: a task due at once, listed first by `nurture tasks`; the copy is marked
    assert by_kind["interested"].task_text.startswith("Answer ")
    assert by_kind["interested"].task_text.endswith(": interested")
    first = app.db.open_tasks()[0][0]
    assert first.task_kind == "interested"
    with app.db.session() as s:
        subjects = [n.subject for n in s.scalars(select(m.Notification))]
    assert any(sub.startswith("[interested] ") for sub in subjects)
    # not_now: a task on the named date, and "later" from that date's first opening
    assert by_kind["not_now"].due_at is not None
    assert by_kind["not_now"].due_at.date().isoformat() == "2027-01-01"
    frank = app.db.lead_by_email(REPLIES["not_now"][1])
    assert frank is not None
    [later] = app.db.enrollments_of(frank.id, "later")
    assert later.next_due_at is not None and later.next_due_at.date().isoformat() == "2027-01-01"
    # and the named date is on the lead for the re-engage mail's template
    assert (frank.fields["resume_on"], frank.fields["resume_month"]) == ("2027-01-01",
                                                                         "January 2027")
    # not_interested: joins the newsletter, never suppressed
    neil = app.db.lead_by_email(REPLIES["not_interested"][1])
    assert neil is not None and app.db.enrollments_of(neil.id, "news")
    assert app.db.suppression_for(neil.email) is None
    # referral: the referred address is a lead of the same owner, with a task and "later"
    ref = app.db.lead_by_email("l.ferri@colombo-logistica.example")
    assert ref is not None and ref.owner == "owner@acme.example"
    with app.db.session() as s:
        row = s.scalars(select(m.Lead).where(m.Lead.email == ref.email)).one()
        assert row.source == "referral"
        assert row.fields["referred_by"] == REPLIES["referral"][1]
        assert row.company == "colombo-logistica.example"
    assert app.db.enrollments_of(ref.id, "later")
    assert "l.ferri@colombo-logistica.example" in by_kind["referral"].task_text
    # wrong_person: a research task naming the company
    assert by_kind["wrong_person"].task_text == \
        "Find the right contact at braun-fensterbau.example"
