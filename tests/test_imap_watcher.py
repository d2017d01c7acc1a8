"""The IMAP watcher against a real Dovecot: failures of the sink, flags and moves, TLS, secrets
in logs, backoff, IDLE renewal, leases, restarts of a watcher."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from imapclient import IMAPClient

from tests.imapkit import make, message, running, wait_until
from tests.inbound_fakes import MemoryCheckpoints, RecordingSink
from tests.servers.dovecot import Account, Dovecot
from worker.adapters.imap_session import backoff_s

pytestmark = pytest.mark.dovecot


def test_sink_failure_is_retried_and_skips_nothing(dovecot: Dovecot, imap_account: Account,
                                                   store: MemoryCheckpoints) -> None:
    # Given a sink whose database fails twice
    sink = RecordingSink(fail_times=2)
    for n in range(3):
        dovecot.append(imap_account, "INBOX", message(n))
    mailbox = make(imap_account, sink, store)
    mailbox._backoff = lambda attempt: 0.05
    # When the watcher starts / Then it retries and every reply is recorded once
    with running(mailbox, watching=False):
        sink.wait_for_records(3, timeout_s=5)
    assert sink.uids() == ["1", "2", "3"]


# -- after-handling actions, TLS, logs ------------------------------------------------------

def test_flag_marks_handled_mail_and_leaves_it_unread(dovecot: Dovecot, imap_account: Account,
                                                      sink: RecordingSink,
                                                      store: MemoryCheckpoints) -> None:
    # Given flag = "$Nurtured" / When a reply is handled
    dovecot.append(imap_account, "INBOX", message(1))
    with running(make(imap_account, sink, store, flag="$Nurtured")):
        sink.wait_for_records(1)
        time.sleep(0.2)
    # Then it carries the flag, is still unread, and is still there
    with dovecot.client(imap_account) as client:
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags([1])[1]
    assert b"$Nurtured" in flags and b"\\Seen" not in flags


def test_move_to_moves_handled_mail(dovecot: Dovecot, imap_account: Account,
                                    sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given move_to = "Nurtured" / When two replies are handled
    for n in range(2):
        dovecot.append(imap_account, "INBOX", message(n))
    with running(make(imap_account, sink, store, move_to="Nurtured")):
        sink.wait_for_records(2)
        wait_until(lambda: dovecot.uids(imap_account) == [], 3, "moved")
    # Then they left INBOX for the other folder, each handed over once
    assert len(dovecot.uids(imap_account, "Nurtured")) == 2
    assert len(sink.calls) == 2


@pytest.mark.parametrize("tls", ["tls", "starttls"])
def test_tls_modes(dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
                   store: MemoryCheckpoints, tls: str) -> None:
    # Given a server with a certificate the client trusts / When the watcher uses TLS
    dovecot.append(imap_account, "INBOX", message(1))
    mailbox = make(imap_account, sink, store, tls=tls, ssl_context=imap_account.ssl_context())
    # Then it reads the mail
    with running(mailbox):
        sink.wait_for_records(1)


def test_credentials_never_reach_the_logs(dovecot: Dovecot, imap_account: Account,
                                          sink: RecordingSink, store: MemoryCheckpoints,
                                          caplog: pytest.LogCaptureFixture) -> None:
    # Given protocol logging at DEBUG (the app's log setup may have quieted imapclient),
    # a good login and a bad one
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imapclient")
    good = make(imap_account, sink, store)
    bad_account = Account(imap_account.host, imap_account.port, imap_account.username,
                          "Wrong-Pa55word")
    bad = make(bad_account, sink, store, name="bad")
    bad._backoff = lambda attempt: 0.05
    # When both run for a moment
    with running(good, bad):
        wait_until(lambda: sum("action=imap_reconnect mailbox=bad" in r.getMessage()
                               for r in caplog.records) >= 2, 10, "bad login retried")
    # Then the failure was logged, and no password appears anywhere
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "LOGIN" in text  # the protocol was logged ...
    assert imap_account.password not in text and "Wrong-Pa55word" not in text  # ... redacted


def test_backoff_is_jittered_exponential_and_capped() -> None:
    # Given the backoff function / Then it doubles, stays within [ceiling/2, ceiling], caps
    assert backoff_s(1, rand=lambda: 0.0) == 0.25 and backoff_s(1, rand=lambda: 1.0) == 0.5
    assert backoff_s(3, rand=lambda: 1.0) == 2.0
    assert backoff_s(100, rand=lambda: 1.0) == 30.0
    assert 15.0 <= backoff_s(10_000) <= 30.0


def test_never_deletes_or_reads_mail_by_default(dovecot: Dovecot, imap_account: Account,
                                                sink: RecordingSink,
                                                store: MemoryCheckpoints) -> None:
    # Given replies in the folder / When they are handled with default settings
    for n in range(2):
        dovecot.append(imap_account, "INBOX", message(n))
    with running(make(imap_account, sink, store)):
        sink.wait_for_records(2)
    # Then they are all still there, unread
    with IMAPClient(imap_account.host, imap_account.port, ssl=False, timeout=5) as client:
        client.login(imap_account.username, imap_account.password)
        client.select_folder("INBOX", readonly=True)
        flags = client.get_flags(client.search("ALL"))
    assert len(flags) == 2 and all(b"\\Seen" not in f for f in flags.values())


def test_mail_announced_during_a_sync_is_not_left_behind(dovecot: Dovecot,
                                                         imap_account: Account,
                                                         store: MemoryCheckpoints) -> None:
    # Given a sink that, while handling the first reply, causes a second one to arrive, so
    # that the server announces it in the answer to the watcher's next command (the STORE
    # of the flag) instead of in IDLE
    class AppendingSink(RecordingSink):
        def handle(self, message: Any) -> bool:
            if not self.calls:
                dovecot.append(imap_account, "INBOX", message_two)
            return super().handle(message)

    message_two = message(2)
    sink = AppendingSink()
    dovecot.append(imap_account, "INBOX", message(1))
    # When the watcher handles the first one
    with running(make(imap_account, sink, store, flag="$Nurtured")):
        # Then the second is handed over too, without waiting for another event
        sink.wait_for_records(2, timeout_s=3)


def test_idle_is_renewed_and_keeps_working(dovecot: Dovecot, imap_account: Account,
                                           sink: RecordingSink, store: MemoryCheckpoints,
                                           caplog: pytest.LogCaptureFixture) -> None:
    # Given IDLE renewed every 0.2 s instead of 540 s
    caplog.set_level(logging.INFO, logger="worker.adapters")
    mailbox = make(imap_account, sink, store, idle_renew_s=0.2)
    with running(mailbox):
        # When several renewals have passed and a reply arrives
        time.sleep(1.0)
        dovecot.append(imap_account, "INBOX", message(1))
        # Then it is handed over, on the same connection (no reconnect)
        sink.wait_for_records(1)
    assert not any("imap_reconnect" in r.getMessage() for r in caplog.records)


def test_a_watcher_that_loses_its_lease_stops_watching_and_retries(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints, caplog: pytest.LogCaptureFixture) -> None:
    # Given a watcher with a short lease
    caplog.set_level(logging.INFO, logger="worker.adapters")
    mailbox = make(imap_account, sink, store, lease_s=0.6)
    with running(mailbox):
        # When another worker takes the lease over
        with store._lock:
            store.leases["default"] = ("thief", time.monotonic() + 60)
        # Then the watcher stops watching at its next renewal
        wait_until(lambda: not mailbox.is_watching, 3, "stopped watching")
        assert any("action=imap_watch_lost" in r.getMessage() for r in caplog.records)
        # When the other worker lets go / Then it watches again and reads new mail
        store.release_watch("default", "thief")
        wait_until(lambda: mailbox.is_watching, 3, "watching again")
        dovecot.append(imap_account, "INBOX", message(1))
        sink.wait_for_records(1)


def test_a_stopped_watcher_can_start_again(dovecot: Dovecot, imap_account: Account,
                                           sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given a watcher that ran and stopped
    mailbox = make(imap_account, sink, store)
    with running(mailbox):
        pass
    # When it starts again and a reply arrives / Then it watches and reads it
    with running(mailbox):
        dovecot.append(imap_account, "INBOX", message(1))
        sink.wait_for_records(1)


# -- the first start: old mail stays old (issue 11, deployment 10) ----------------------------

def test_a_first_start_reads_only_mail_that_arrives_after_it(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints) -> None:
    # Given a mailbox with years of mail and no stored place (a fresh database)
    for n in range(3):
        dovecot.append(imap_account, "INBOX", message(f"old-{n}"))
    # When the watcher starts for the first time and a reply arrives
    with running(make(imap_account, sink, store, read_existing=False)):
        dovecot.append(imap_account, "INBOX", message("new-1"))
        sink.wait_for_records(1)
        time.sleep(0.3)
    # Then only the new reply was handed over
    assert sink.uids() == ["4"]
    # And a restart keeps its place: what came while it was down is read
    dovecot.append(imap_account, "INBOX", message("new-2"))
    with running(make(imap_account, sink, store, read_existing=False)):
        sink.wait_for_records(2)
    assert sink.uids() == ["4", "5"]


def test_read_existing_reads_old_mail_on_a_first_start(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints) -> None:
    for n in range(3):
        dovecot.append(imap_account, "INBOX", message(f"old-{n}"))
    with running(make(imap_account, sink, store, read_existing=True)):
        sink.wait_for_records(3)
    assert sink.uids() == ["1", "2", "3"]


def test_a_fence_before_any_first_start_skips_old_mail(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints) -> None:
    dovecot.append(imap_account, "INBOX", message("old"))
    mailbox = make(imap_account, sink, store, read_existing=False)
    assert mailbox.fence(5.0)
    assert sink.calls == []
