"""The owner's copy of a lead's reply can be answered: Reply-To is the lead (with the lead's
name, however odd), and In-Reply-To/References thread it onto the lead's message. Sent by the
worker through a real SMTP server (aiosmtpd) and parsed as a mail client would."""

from __future__ import annotations

import email
import email.policy
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import FakeClock, make_app, run_once, two_steps
from worker.adapters.db import models as m
from worker.app import App
from worker.domain.leads import parse_lead
from worker.ports import RawMessage

OWNER = "rep@acme.example"


def _app(tmp: Path, smtp: ScriptedSmtpServer) -> App:
    two_steps(tmp, "quick", subject="Your report")
    return make_app(tmp, OUTBOUND__TRANSPORT="smtp", SMTP__HOST=smtp.host,
                    SMTP__PORT=str(smtp.port), SMTP__CONNECTIONS="1",
                    SMTP__ADDRESS="Nurture <nurture@acme.example>",
                    NOTIFY__DEFAULT_OWNER=OWNER)


def _to(smtp: ScriptedSmtpServer, address: str) -> list[EmailMessage]:
    return [email.message_from_bytes(m.data, _class=EmailMessage, policy=email.policy.default)
            for m in smtp.messages if address in m.rcpt_tos]


def test_the_forwarded_reply_answers_the_lead_in_the_leads_thread(tmp_path: Path) -> None:
    with ScriptedSmtpServer().start() as smtp:
        app = _app(tmp_path, smtp)
        lead = "ann@client.example"
        app.service.intake({"email": lead, "first_name": 'Ann "the boss"',
                            "last_name": "Ärger, Jr.", "owner": OWNER}, campaign="quick")
        assert run_once(app) == 0
        ours = str(_to(smtp, lead)[0]["Message-ID"]).strip("<>")
        # Given: the lead answers from her own mailbox, in a thread that started earlier
        reply = (f"From: Ann <{lead}>\r\nTo: Dana <dana@acme.example>\r\n"
                 "Subject: Re: Your report\r\nMessage-ID: <ann-1@client.example>\r\n"
                 f"In-Reply-To: <{ours}>\r\nReferences: <older@client.example> <{ours}>\r\n"
                 "Content-Type: text/plain\r\n\r\nInteresting, call me on Monday.\r\n").encode()
        assert app.inbox.handle(RawMessage("default", "INBOX", "1", 0, reply, len(reply)))
        # When: the worker sends its notifications
        assert run_once(app) == 0
        forwarded = _to(smtp, OWNER)
        # Then: pressing Reply reaches Ann, in her thread
        assert len(forwarded) == 1
        note = forwarded[0]
        (reply_to,) = note["Reply-To"].addresses
        assert (reply_to.display_name, reply_to.addr_spec) == ('Ann "the boss" Ärger, Jr.', lead)
        assert str(note["In-Reply-To"]) == "<ann-1@client.example>"
        assert str(note["References"]).split() == [
            "<older@client.example>", f"<{ours}>", "<ann-1@client.example>"]
        assert "Bcc" not in note and "Interesting, call me" in note.get_content()
        app.db.engine.dispose()


def test_a_notification_that_is_no_reply_has_no_reply_to(tmp_path: Path) -> None:
    with ScriptedSmtpServer().start() as smtp:
        app = _app(tmp_path, smtp)
        app.db.add_notification("task_digest", OWNER, "Your tasks", "Nothing today")
        assert run_once(app) == 0
        (note,) = _to(smtp, OWNER)
        assert "Reply-To" not in note and "In-Reply-To" not in note
        app.db.engine.dispose()


def test_the_daily_task_digest_goes_once_to_each_owner_with_their_tasks_soonest_first(
        tmp_path: Path) -> None:
    # Given open tasks of two owners (and one without an owner) in the database
    clock = FakeClock()
    app = make_app(tmp_path, clock, NOTIFY__TASK_DIGEST="true", NOTIFY__DIGEST_HOUR="9")
    lead_id = app.db.upsert_leads([(parse_lead({"email": "lee@acme.test"}), None)])[0].lead_id
    enrollment_id, _ = app.db.enroll(lead_id, "quick", None)
    now = clock.now()
    with app.db.session() as s:
        for n, (owner, days, text) in enumerate((("b@acme.test", 2, "later"),
                                                  ("a@acme.test", 3, "a's call"),
                                                  ("b@acme.test", 1, "sooner"),
                                                  (None, 0, "nobody's"))):
            s.add(m.Touch(enrollment_id=enrollment_id, lead_id=lead_id, campaign="quick",
                          step_id=f"t{n}", step_index=n, kind="task", state="open",
                          owner=owner, task_text=text, due_at=now + timedelta(days=days),
                          created_at=now))
    # When the digest hour has passed, twice the same day
    app.notify.digest_if_due()
    app.notify.digest_if_due()
    # Then each owner got one digest, owners and tasks soonest first, none for nobody
    notes = app.db.unsent_notifications()
    assert [(n.kind, n.to_addr, n.subject) for n in notes] == [
        ("task_digest", "b@acme.test", "Your open follow-up tasks (2)"),
        ("task_digest", "a@acme.test", "Your open follow-up tasks (1)")]
    assert notes[0].body.index("sooner") < notes[0].body.index("later")
    assert "nobody's" not in notes[0].body + notes[1].body
    app.db.engine.dispose()
