"""The inbox end to end: a running worker, a real SMTP server and a real Dovecot. Replies
stop sequences, out-of-office postpones, bounces and unsubscribes suppress."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers.dovecot import Account, Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import make_app, two_steps
from worker.adapters.db import models as m
from worker.app import App

pytestmark = pytest.mark.dovecot

def quick_app(tmp: Path, smtp: ScriptedSmtpServer, account: Account, **env: str) -> App:
    two_steps(tmp, "quick", second_wait="4s", subject="Your report")
    options = {"OUTBOUND__TRANSPORT": "smtp", "SMTP__HOST": smtp.host,
               "SMTP__PORT": str(smtp.port), "SMTP__CONNECTIONS": "2",
               "INBOUND__TRANSPORT": "imap", "IMAP__HOST": account.host,
               "IMAP__PORT": str(account.port), "IMAP__USERNAME": account.username,
               "IMAP__PASSWORD": account.password, **env}
    return make_app(tmp, **options)


class Worker:
    """A worker running in a thread of the test (its own event loop)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.runner = app.make_runner()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self.code = asyncio.run(self.runner.run())

    def __enter__(self) -> Worker:
        self.thread.start()
        # A first start reads only mail that arrives after it (imap.read_existing): mail the
        # test appends must come after the watcher is up.
        wait_until(lambda: all(getattr(box, "is_watching", True) for box in self.app.inbound),
                   20, "watching")
        return self

    def __exit__(self, *exc: object) -> None:
        self.runner.stop()
        self.thread.join(30)
        assert self.code == 0


def sent_to(smtp: ScriptedSmtpServer, address: str) -> list[str]:
    return [msg.message_id or "" for msg in smtp.messages if address in msg.rcpt_tos]


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def status(app: App, address: str) -> str:
    lead = app.db.lead_by_email(address)
    assert lead is not None
    return app.db.enrollments_of(lead.id, "quick")[0].status


def reply(sender: str, in_reply_to: str, body: str, subject: str = "Re: Your report",
          headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: dana@acme.example\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, body)))}@lead.test>\r\nIn-Reply-To: {in_reply_to}\r\n"
            f"References: {in_reply_to}\r\n{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n"
            f"{body}\r\n").encode()


def dsn(recipient: str, message_id: str) -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.lead.test>\r\nTo: dana@acme.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-e2e@mx.lead.test>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; "
        "boundary=\"B\"\r\n\r\n--B\r\nContent-Type: text/plain\r\n\r\nDelivery failed.\r\n\r\n--B\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.lead.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: user unknown\r\n\r\n--B\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nTo: {recipient}\r\nMessage-ID: {message_id}\r\n"
        "\r\n--B--\r\n").encode()


def test_replies_stop_postpone_and_suppress(tmp_path: Path, smtp_server: ScriptedSmtpServer,
                                            dovecot: Dovecot, imap_account: Account) -> None:
    app = quick_app(tmp_path, smtp_server, imap_account)
    leads = ["human@lead.test", "away@lead.test", "dead@lead.test", "stop@lead.test",
             "quiet@lead.test"]
    with Worker(app):
        # Given five leads who got step one
        for address in leads:
            app.service.intake({"email": address}, campaign="quick")
        smtp_server.wait_for(5, 20)
        first = {a: sent_to(smtp_server, a)[0] for a in leads}
        back = date.today() + timedelta(days=10)
        # When four of them answer in four ways
        for raw in (
            reply("Hu Man <human@lead.test>", first["human@lead.test"], "Sounds good, call me."),
            reply("away@lead.test", first["away@lead.test"],
                  f"I am out of the office until {back:%d %B %Y} with limited access to email.",
                  subject="Automatic reply: Your report", headers="Auto-Submitted: auto-replied\r\n"),
            dsn("dead@lead.test", first["dead@lead.test"]),
            reply("stop@lead.test", first["stop@lead.test"], "Please unsubscribe me from this list."),
        ):
            dovecot.append(imap_account, "INBOX", raw)
        # Then only the quiet lead gets step two, four seconds later
        smtp_server.wait_for(6, 30)
        time.sleep(1.0)
        assert [a for a in leads if len(sent_to(smtp_server, a)) == 2] == ["quiet@lead.test"]
    assert status(app, "human@lead.test") == "replied"
    assert status(app, "away@lead.test") == "waiting"
    assert status(app, "dead@lead.test") == "bounced"
    assert status(app, "stop@lead.test") == "unsubscribed"
    assert status(app, "quiet@lead.test") == "completed"
    assert app.db.suppression_for("dead@lead.test") == "bounced"
    assert app.db.suppression_for("stop@lead.test") == "unsubscribed"
    lead = app.db.lead_by_email("away@lead.test")
    assert lead is not None
    due = app.db.enrollments_of(lead.id, "quick")[0].next_due_at
    assert due is not None and due.date() == back + timedelta(days=1 if back.weekday() < 4 else
                                                              7 - back.weekday())
    with app.db.session() as s:
        rows = {r.matched_by: (r.cls, r.subclass) for r in s.scalars(select(m.Inbound))}
    assert rows["in_reply_to"] in {("human", None), ("auto_reply", "ooo"), ("unsubscribe", None)}
    assert rows["dsn_message_id"] == ("bounce", "hard")


def test_a_reply_one_second_before_a_due_step_stops_it(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, dovecot: Dovecot,
        imap_account: Account) -> None:
    app = quick_app(tmp_path, smtp_server, imap_account)
    with Worker(app):
        # Given a lead whose second step is due four seconds after the first
        app.service.intake({"email": "late@lead.test"}, campaign="quick")
        [msg] = smtp_server.wait_for(1, 20)
        started = time.monotonic()
        # When the reply lands in the mailbox one second before it is due
        time.sleep(max(0.0, 3.0 - (time.monotonic() - started)))
        dovecot.append(imap_account, "INBOX", reply("late@lead.test", msg.message_id or "",
                                                   "Yes, let's talk."))
        # Then step two never goes out
        wait_until(lambda: status(app, "late@lead.test") == "replied", 10, "replied")
        time.sleep(2.5)
        assert len(sent_to(smtp_server, "late@lead.test")) == 1


def test_restart_and_uidvalidity_change_lose_nothing_and_repeat_nothing(
        tmp_path: Path, smtp_server: ScriptedSmtpServer,
        dovecot_factory: Callable[..., Dovecot]) -> None:
    # Given a Dovecot of our own (it is restarted) and a worker watching it
    server = dovecot_factory()
    account = server.add_user()
    app = quick_app(tmp_path, smtp_server, account)

    def inbound_count() -> int:
        with app.db.session() as s:
            return int(s.scalar(select(func.count()).select_from(m.Inbound)))

    def msg(n: int) -> bytes:
        return (f"From: x{n}@other.test\r\nTo: dana@acme.example\r\nSubject: hello {n}\r\n"
                f"Message-ID: <m{n}@other.test>\r\n\r\nhi {n}\r\n").encode()

    with Worker(app):
        for n in range(3):
            server.append(account, "INBOX", msg(n))
        wait_until(lambda: inbound_count() == 3, 20, "three handled")
        # When the server restarts during IDLE
        server.restart()
        server.append(account, "INBOX", msg(3))
        wait_until(lambda: inbound_count() == 4, 60, "handled after restart")
    # And, with the worker stopped, the folder gets a new UIDVALIDITY and a new message
    old, new = server.reset_uidvalidity(account, "INBOX")
    assert old != new
    server.append(account, "INBOX", msg(4))
    with Worker(app):
        wait_until(lambda: inbound_count() == 5, 30, "handled after uidvalidity change")
        time.sleep(1.0)
    # Then every message was recorded exactly once
    with app.db.session() as s:
        subjects = sorted(s.scalars(select(m.Inbound.subject)))
    assert subjects == [f"hello {n}" for n in range(5)]
