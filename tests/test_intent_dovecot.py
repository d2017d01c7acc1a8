"""Reply intent end to end against Dovecot (issue 14): a running worker sends the first step
over SMTP, real replies of each intent from ../shared/intent (header swap per its README) are
appended to the IMAP mailbox, and the worker's inbound path reads them; then the owner's
tasks, the re-engage enrolment, the referred lead and the report's intents are checked, and
`nurture inbox reclassify` undoes a wrong suppression."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers.dovecot import Account, Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.test_inbox_e2e import Worker, sent_to, wait_until
from tests.test_intent_e2e import CORPUS, REPLIES, swapped
from tests.test_reclassify import GLORIA, nurture
from tests.workspace import REPO, email_template, make_app, write_campaign
from worker.adapters.db import models as m
from worker.app import App

pytestmark = [pytest.mark.dovecot,
              pytest.mark.skipif(not CORPUS.is_dir(), reason="../shared/intent is absent")]
FILES = {**{intent: pair for intent, pair in REPLIES.items()},
         "unsubscribe": ("011-unsubscribe-en.eml", GLORIA)}
OWNER = "owner@acme.example"


def campaigns(tmp: Path) -> None:
    """sales (not_now -> the shipped re-engage, referral -> sales) and a newsletter."""
    root = tmp / "campaigns"
    write_campaign(root, "sales", """
        name = "Sales"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        on_finish = "newsletter"
        not_now_campaign = "re-engage"
        referral_campaign = "sales"
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        [[step]]
        id = "two"
        wait = "30d"
        template = "one.md"
        """, {"one.md": email_template("Quick question")})
    write_campaign(root, "newsletter", """
        name = "News"
        kind = "newsletter"
        sender = "Dana at Acme <dana@acme.example>"
        """, {})
    shutil.copytree(REPO / "campaigns" / "re-engage", root / "re-engage")


def inbound_count(app: App) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(m.Inbound)) or 0)


def test_replies_of_each_intent_through_imap_and_a_reclassification(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, dovecot: Dovecot,
        imap_account: Account) -> None:
    campaigns(tmp_path)
    app = make_app(tmp_path, NOTIFY__DEFAULT_OWNER=OWNER,
                   OUTBOUND__TRANSPORT="smtp", SMTP__HOST=smtp_server.host,
                   SMTP__PORT=str(smtp_server.port), INBOUND__TRANSPORT="imap",
                   IMAP__HOST=imap_account.host, IMAP__PORT=str(imap_account.port),
                   IMAP__USERNAME=imap_account.username, IMAP__PASSWORD=imap_account.password)
    with Worker(app):
        # Given six leads who got the first mail of "sales" over SMTP
        for _file, address in FILES.values():
            app.service.intake({"email": address, "company": address.split("@")[1]},
                               campaign="sales")
        smtp_server.wait_for(len(FILES), 30)
        # When each answers, the reply appended to the IMAP inbox
        for file, address in FILES.values():
            [sent] = sent_to(smtp_server, address)
            dovecot.append(imap_account, "INBOX", swapped(file, sent))
        # Then the worker reads every one
        wait_until(lambda: inbound_count(app) == len(FILES), 60, "six replies read")
    with app.db.session() as s:
        inbound = {r.from_addr: r for r in s.scalars(select(m.Inbound))}
        tasks = {t.task_kind: t for t in s.scalars(select(m.Touch).where(m.Touch.kind == "task"))}
    for intent, (_file, address) in REPLIES.items():
        assert (inbound[address].cls, inbound[address].subclass) == ("human", intent)
    assert inbound[GLORIA].cls == "unsubscribe"
    # the owner's tasks: interested now, not_now on the date, referral, wrong person
    assert set(tasks) == {"interested", "not_now", "referral", "wrong_person"}
    assert tasks["interested"].owner == OWNER
    assert tasks["not_now"].due_at is not None
    # (1 January 2027 is a US holiday: re-engage's window opens on Monday the 4th)
    assert tasks["not_now"].due_at.date().isoformat() == "2027-01-04"
    # not_now: enrolled in the shipped re-engage from that date, the date on the lead
    frank = app.db.lead_by_email(REPLIES["not_now"][1])
    assert frank is not None and frank.fields["resume_month"] == "January 2027"
    [again] = app.db.enrollments_of(frank.id, "re-engage")
    assert again.status == "active" and again.next_due_at is not None
    assert again.next_due_at.date().isoformat() == "2027-01-04"
    # not_interested: the newsletter, not suppressed; referral: a new lead in sales
    neil = app.db.lead_by_email(REPLIES["not_interested"][1])
    assert neil is not None and app.db.enrollments_of(neil.id, "newsletter")
    assert app.db.suppression_for(neil.email) is None
    referred = app.db.lead_by_email("l.ferri@colombo-logistica.example")
    assert referred is not None and referred.owner == OWNER
    assert [e.status for e in app.db.enrollments_of(referred.id, "sales")] == ["active"]
    # the report counts the replies by intent on the step they answered
    report = json.loads(nurture(tmp_path, "report", "--campaign", "sales",
                                "--json").stdout)
    [one] = [s for s in report["campaigns"][0]["steps"] if s["step"] == "one"]
    assert {k: v for k, v in one["intents"].items() if v} == {
        "interested": 1, "not_now": 1, "not_interested": 1, "referral": 1, "wrong_person": 1}

    # When the unsubscribe is corrected to human/interested with the command
    assert app.db.suppression_for(GLORIA) == "unsubscribed"
    nurture(tmp_path, "inbox", "reclassify", str(inbound[GLORIA].id),
            "human/interested", "--by", "dana@acme.example")
    # Then the suppression is lifted, the status restored before the reply ended it, and the
    # interested task written
    assert app.db.suppression_for(GLORIA) is None
    gloria = app.db.lead_by_email(GLORIA)
    assert gloria is not None
    [sales] = app.db.enrollments_of(gloria.id, "sales")
    with app.db.session() as s:
        changes = [(c.old, c.new) for c in s.scalars(select(m.StatusChange).where(
            m.StatusChange.enrollment_id == sales.id).order_by(m.StatusChange.id))]
        mine = [t.task_kind for t in s.scalars(select(m.Touch).where(
            m.Touch.kind == "task", m.Touch.lead_id == gloria.id))]
    assert changes[-3:] == [("active", "unsubscribed"), ("unsubscribed", "active"),
                            ("active", "replied")]
    assert mine == ["interested"]
    report = json.loads(nurture(tmp_path, "report", "--campaign", "sales",
                                "--json").stdout)
    [one] = [s for s in report["campaigns"][0]["steps"] if s["step"] == "one"]
    assert one["intents"]["interested"] == 2
