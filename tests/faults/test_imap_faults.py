"""The IMAP fault suite: a running worker (its inbox watcher through ``App``/``Inbound``,
so the database's own deduplication is what is tested) against a Dovecot that is flooded,
restarted and renumbered, and fed huge, broken and strangely encoded mail.

Afterwards: no crash, nothing processed twice (inbound rows == distinct messages, one
forwarded reply per reply), nothing skipped (every message has its row), and every lead who
replied, however mangled the reply, has its sequence stopped.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers.dovecot import Account, Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.test_inbox_e2e import Worker
from tests.test_processes import wait_until
from tests.workspace import make_app, two_steps
from worker.adapters.db import models as m
from worker.app import App

pytestmark = [pytest.mark.dovecot, pytest.mark.postgres]

FLOOD = 5_000
LEADS = 100
MIB = 1024 * 1024
OWNER = "owner@acme.example"


def inbox_app(tmp: Path, smtp: ScriptedSmtpServer, account: Account, pg_url: str) -> App:
    """A worker on PostgreSQL that sends through ``smtp`` and watches ``account``'s INBOX.
    Its campaign's second step waits an hour, so only replies change the enrolments."""
    two_steps(tmp, "flood", second_wait="1h", subject="Your report")
    return make_app(tmp, DATABASE__URL=pg_url, OUTBOUND__TRANSPORT="smtp",
                    SMTP__HOST=smtp.host, SMTP__PORT=str(smtp.port), SMTP__CONNECTIONS="2",
                    INBOUND__TRANSPORT="imap", IMAP__HOST=account.host,
                    IMAP__PORT=str(account.port), IMAP__USERNAME=account.username,
                    IMAP__PASSWORD=account.password, IMAP__TIMEOUT_S="10",
                    NOTIFY__DEFAULT_OWNER=OWNER)


def deliver(server: Dovecot, account: Account, messages: Iterable[bytes]) -> int:
    """Deliver straight into the user's INBOX Maildir, as a local delivery agent does
    (written in tmp/, renamed into new/), so thousands arrive within a second."""
    root = server.folder_dir(account)
    if not (root / "new").is_dir():
        server.uids(account)  # the first login creates the Maildir
    count = 0
    for raw in messages:
        name = f"{time.time_ns()}.M{count}P{os.getpid()}.nurture-test"
        staged = root / "tmp" / name
        staged.write_bytes(raw)
        server.mail_user.chown(staged)
        staged.rename(root / "new" / name)
        count += 1
    return count


def message(n: int, sender: str = "", in_reply_to: str = "", headers: str = "",
            body: bytes = b"", content_type: str = "text/plain; charset=utf-8") -> bytes:
    sender = sender or f"someone{n}@elsewhere.test"
    thread = f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n" if in_reply_to \
        else ""
    return (f"From: {sender}\r\nTo: dana@acme.example\r\nSubject: Re: flood {n}\r\n"
            f"Date: Mon, 02 Mar 2026 10:{n // 60 % 60:02d}:{n % 60:02d} +0000\r\n"
            f"Message-ID: <flood-{n}@elsewhere.test>\r\n{thread}{headers}"
            f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n").encode() + \
        (body or f"Message number {n}. Thanks, let us talk next week.\r\n".encode())


def inbound_count(app: App) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(m.Inbound)) or 0)


def enrol_and_send(app: App, smtp: ScriptedSmtpServer, leads: list[str]) -> dict[str, str]:
    """Each lead enrolled and sent step one; lead -> the Message-ID of that mail."""
    for address in leads:
        app.service.intake({"email": address}, campaign="flood")
    smtp.wait_for(len(leads), 60)
    return {msg.rcpt_tos[0]: (msg.message_id or "").strip("<>") for msg in smtp.messages}


def statuses(app: App, leads: list[str]) -> dict[str, str]:
    out = {}
    for address in leads:
        lead = app.db.lead_by_email(address)
        assert lead is not None
        out[address] = app.db.enrollments_of(lead.id, "flood")[0].status
    return out


def forwarded(app: App) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).where(m.Notification.kind == "reply")) or 0)


def when(predicate: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Wait for ``predicate``; the seconds it took."""
    started = time.monotonic()
    wait_until(predicate, timeout_s, what)
    return time.monotonic() - started


def test_a_flood_with_a_restart_and_a_uidvalidity_reset_is_processed_once_each(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str,
        dovecot_factory: Callable[..., Dovecot], capsys: pytest.CaptureFixture[str]) -> None:
    # Given a worker watching a Dovecot of its own, and 100 leads who got step one
    server = dovecot_factory()
    account = server.add_user()
    app = inbox_app(tmp_path, smtp_server, account, pg_url)
    leads = [f"lead{i}@customer{i}.test" for i in range(LEADS)]
    with Worker(app) as worker:
        sent = enrol_and_send(app, smtp_server, leads)
        # When 5,000 messages land at once, 100 of them replies from those leads
        replies = {n * (FLOOD // LEADS): lead for n, lead in enumerate(leads)}
        flood = (message(n, sender=replies[n], in_reply_to=sent[replies[n]])
                 if n in replies else message(n) for n in range(FLOOD))
        started = time.monotonic()
        deliver(server, account, flood)
        # And Dovecot restarts once 1,500 were handled (the watcher is mid-sync)
        first_s = when(lambda: inbound_count(app) >= 1500, 120, "1,500 handled")
        handled_at_restart = inbound_count(app)
        server.restart()
        # And the folder gets a new UIDVALIDITY once 3,000 were handled (every UID changes)
        when(lambda: inbound_count(app) >= 3000, 120, "3,000 handled")
        handled_at_reset = inbound_count(app)
        old, new = server.reset_uidvalidity(account)
        # Then every message is handled, exactly once
        when(lambda: inbound_count(app) >= FLOOD, 180, "the whole flood handled")
        took_s = time.monotonic() - started
        time.sleep(3.0)  # room for a late second handling, if there were one
        assert worker.thread.is_alive()
    with app.db.session() as s:
        rows = s.execute(select(m.Inbound.message_id, m.Inbound.cls, m.Inbound.matched_by)).all()
    rate = FLOOD / took_s
    with capsys.disabled():
        print(f"\nIMAP flood: {FLOOD} messages in {took_s:.1f}s = {rate:.0f} msg/s overall "
              f"(first 1,500 at {1500 / first_s:.0f} msg/s); restart at {handled_at_restart}, "
              f"UIDVALIDITY {old}->{new} at {handled_at_reset}")
    assert len(rows) == FLOOD
    assert sorted(r.message_id for r in rows) == sorted(f"flood-{n}@elsewhere.test"
                                                        for n in range(FLOOD))
    # And each lead's reply stopped its sequence and was forwarded once
    assert set(statuses(app, leads).values()) == {"replied"}
    assert sum(1 for r in rows if r.matched_by == "in_reply_to") == LEADS
    assert forwarded(app) == LEADS
    assert worker.code == 0


def test_huge_broken_and_unknown_charset_replies_stop_their_leads_across_a_restart(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str,
        dovecot_factory: Callable[..., Dovecot]) -> None:
    # Given a worker watching a Dovecot of its own (in IDLE), and five leads who got step one
    server = dovecot_factory()
    account = server.add_user()
    app = inbox_app(tmp_path, smtp_server, account, pg_url)
    leads = ["huge@lead.test", "broken@lead.test", "klingon@lead.test", "header@lead.test",
             "quiet@lead.test"]
    with Worker(app) as worker:
        sent = enrol_and_send(app, smtp_server, leads)
        attachment = b"Content-Type: application/octet-stream\r\n\r\n" + \
            (b"A" * 76 + b"\r\n") * (20 * MIB // 78)
        mangled = [
            # a 20 MB reply (a big attachment, read up to 2 MB)
            message(1, "huge@lead.test", sent["huge@lead.test"],
                    content_type='multipart/mixed; boundary="XX"',
                    body=b"--XX\r\nContent-Type: text/plain\r\n\r\nSee attached, call me.\r\n"
                         b"--XX\r\n" + attachment + b"--XX--\r\n"),
            # a multipart whose boundary is never declared or closed
            message(2, "broken@lead.test", sent["broken@lead.test"],
                    content_type="multipart/alternative",
                    body=b"--nowhere\r\nContent-Type: text/plain\r\n\r\nYes, interested.\r\n"
                         b"--nowhere\r\nContent-Type: text/html\r\n\r\n<p>Yes"),
            # a body in a charset nobody knows, with 8-bit bytes
            message(3, "klingon@lead.test", sent["klingon@lead.test"],
                    content_type="text/plain; charset=x-klingon",
                    body=b"Qapla'! \xe4\xf6\xfc\x81\x8d call me\r\n"),
            # an encoded-word subject and a From name in unknown charsets, raw 8-bit headers
            message(4, "=?x-unknown?B?SGVsbG8=?= <header@lead.test>", sent["header@lead.test"],
                    headers="X-Note: \xe9t\xe9\r\nThread-Topic: =?x-klingon?Q?=E4=F6?=\r\n",
                    body=b"Sounds good.\r\n"),
            # from strangers: bare LF line ends with NUL bytes, and a header block that never
            # ends (no blank line, no body) with a 1 MB header line
            message(5).replace(b"\r\n", b"\n").replace(b"Message number", b"\x00\x00 number"),
            message(6).split(b"\r\n\r\n")[0] + b"\r\nX-Long: " + b"x" * MIB,
        ]
        # When they land while the server restarts under the watcher's IDLE
        deliver(server, account, mangled[:2])
        wait_until(lambda: inbound_count(app) >= 1, 60, "first mangled reply handled")
        server.restart()
        deliver(server, account, mangled[2:])
        # Then each is handled once, and each reply stops its lead's sequence
        wait_until(lambda: inbound_count(app) == 6, 120, "all six handled")
        time.sleep(2.0)
        assert worker.thread.is_alive()
    assert worker.code == 0
    with app.db.session() as s:
        rows = {r.from_addr: r for r in s.scalars(select(m.Inbound))
                if r.from_addr and r.from_addr.endswith("@lead.test")}
        strangers = s.scalars(select(m.Inbound.lead_id).where(
            m.Inbound.message_id.in_(["flood-5@elsewhere.test", "flood-6@elsewhere.test"]))).all()
    assert len(rows) == 4 and strangers == [None, None]
    assert statuses(app, leads) == {**{a: "replied" for a in leads[:4]}, "quiet@lead.test":
                                    "active"}
    assert {r.cls for r in rows.values()} == {"human"}
    assert {r.matched_by for r in rows.values()} == {"in_reply_to"}
    assert rows["huge@lead.test"].size > 20 * MIB
    assert forwarded(app) == 4
