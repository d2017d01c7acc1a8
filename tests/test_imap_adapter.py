"""The IMAP watcher against a real Dovecot: IDLE, polling, fences, restarts, UIDVALIDITY."""

from __future__ import annotations

import logging
import statistics
import threading
import time
from collections.abc import Callable

import pytest

from tests.imapkit import MIB, make, message, percentile, running, wait_until
from tests.inbound_fakes import MemoryCheckpoints, RecordingSink
from tests.servers.dovecot import Account, Dovecot

pytestmark = pytest.mark.dovecot


@pytest.fixture(scope="module")
def own_dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    """A Dovecot these tests restart; the shared one stays untouched."""
    return dovecot_factory()


# -- IDLE and fences -----------------------------------------------------------------------

def test_idle_hands_over_new_mail_promptly(dovecot: Dovecot, imap_account: Account,
                                           sink: RecordingSink, store: MemoryCheckpoints,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    # Given a watcher in IDLE
    mailbox = make(imap_account, sink, store)
    with running(mailbox):
        # When 50 replies arrive, one every 0.1 s
        appended: dict[int, float] = {}
        for n in range(50):
            dovecot.append(imap_account, "INBOX", message(n))
            appended[n] = time.monotonic()
            time.sleep(0.1)
        sink.wait_for_records(50, timeout_s=10)
    # Then each was handed over once, within about Dovecot's 0.5 s IDLE delay
    assert len(sink.calls) == 50 and all(call.new for call in sink.calls)
    assert [int(uid) for uid in sink.uids()] == list(range(1, 51))
    latencies = [sink.recorded_at(f"<reply-{n}@".encode()) - at  # type: ignore[operator]
                 for n, at in appended.items()]
    with capsys.disabled():
        print(f"\nIDLE append-to-handle latency over 50: p50={percentile(latencies, .5):.3f}s "
              f"p99={percentile(latencies, .99):.3f}s max={max(latencies):.3f}s")
    assert percentile(latencies, 0.99) < 3.0
    assert store.load_checkpoint("default", "INBOX").last_uid == 50  # type: ignore[union-attr]
    assert mailbox.last_success_at is not None and mailbox.last_success_at.tzinfo is not None


def test_fence_returns_after_a_just_appended_message_was_handled(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a watcher in IDLE
    mailbox = make(imap_account, sink, store)
    latencies: list[float] = []
    with running(mailbox):
        for n in range(20):
            # When a reply arrives and the sender fences right away
            dovecot.append(imap_account, "INBOX", message(n))
            started = time.monotonic()
            assert mailbox.fence(5.0)
            latencies.append(time.monotonic() - started)
            # Then the reply was handed over before fence returned
            assert sink.recorded_at(f"<reply-{n}@".encode()) is not None
    with capsys.disabled():
        print(f"\nfence latency over 20: p50={percentile(latencies, .5) * 1000:.1f}ms "
              f"p99={percentile(latencies, .99) * 1000:.1f}ms")
    # And well before Dovecot's IDLE notification (0.5 s) would have told the watcher
    assert statistics.median(latencies) < 0.25
    assert len(sink.calls) == 20


def test_fence_without_the_lease_reads_on_its_own_connection(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints) -> None:
    # Given another worker holds the watch lease, so this one does not watch
    assert store.acquire_watch("default", "other-worker", 60)
    mailbox = make(imap_account, sink, store)
    with running(mailbox, watching=False):
        time.sleep(0.2)
        assert not mailbox.is_watching
        # When replies arrive and this worker fences (twice)
        dovecot.append(imap_account, "INBOX", message(1))
        assert mailbox.fence(5.0)
        dovecot.append(imap_account, "INBOX", message(2))
        assert mailbox.fence(5.0)
    # Then both were handed over once, and the checkpoint (the other worker's) did not move
    assert sink.uids() == ["1", "2"]
    assert store.saves == []
    assert store.holder("default") == "other-worker"


def test_fence_before_start_reads_once(dovecot: Dovecot, imap_account: Account,
                                       sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given a mailbox that was never started / When a reply arrives and a fence runs
    dovecot.append(imap_account, "INBOX", message(1))
    mailbox = make(imap_account, sink, store)
    # Then the fence hands it over
    assert mailbox.fence(5.0)
    assert sink.uids() == ["1"]
    mailbox._close_oneoff()


def test_fence_fails_within_its_timeout_when_the_server_is_unreachable(
        sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given a mailbox pointing at a closed port
    account = Account("127.0.0.1", 9, "nobody", "nothing")
    mailbox = make(account, sink, store)
    # When it fences / Then it answers False, in time
    started = time.monotonic()
    assert mailbox.fence(2.0) is False
    assert time.monotonic() - started < 2.5


# -- checkpoints, restarts, UIDVALIDITY -----------------------------------------------------

def test_resume_from_checkpoint_hands_nothing_twice(dovecot: Dovecot, imap_account: Account,
                                                    sink: RecordingSink,
                                                    store: MemoryCheckpoints) -> None:
    # Given three replies handled by a first run
    for n in range(3):
        dovecot.append(imap_account, "INBOX", message(n))
    with running(make(imap_account, sink, store)):
        sink.wait_for_records(3)
    # When two more arrive while no worker runs, and a new worker starts
    for n in range(3, 5):
        dovecot.append(imap_account, "INBOX", message(n))
    with running(make(imap_account, sink, store, worker="w2")):
        sink.wait_for_records(5)
        time.sleep(0.3)
    # Then only the two new ones were handed over by the second run
    assert sink.uids() == ["1", "2", "3", "4", "5"]
    assert all(call.new for call in sink.calls)
    # And every checkpoint was saved after the work it covers
    assert [cp.last_uid for cp, _ in store.saves] == [3, 5]


def test_server_restart_during_idle_loses_nothing(own_dovecot: Dovecot, sink: RecordingSink,
                                                  store: MemoryCheckpoints,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    # Given a watcher in IDLE that handled one reply
    caplog.set_level(logging.INFO, logger="worker.adapters")
    account = own_dovecot.add_user()
    own_dovecot.append(account, "INBOX", message(1))
    mailbox = make(account, sink, store)
    with running(mailbox):
        sink.wait_for_records(1)
        # When the server restarts, and replies arrive right after it
        own_dovecot.stop()
        own_dovecot.start()
        own_dovecot.append(account, "INBOX", message(2))
        own_dovecot.append(account, "INBOX", message(3))
        # Then the watcher reconnects and hands them over, once each
        sink.wait_for_records(3, timeout_s=10)
        wait_until(lambda: mailbox.is_watching, 5, "watching again")
        own_dovecot.append(account, "INBOX", message(4))
        sink.wait_for_records(4)
    assert sink.uids() == ["1", "2", "3", "4"]
    reconnects = [r.getMessage() for r in caplog.records if "action=imap_reconnect" in r.getMessage()]
    assert reconnects and "mailbox=default attempt=1" in reconnects[0]


def test_uidvalidity_reset_loses_nothing_and_records_nothing_twice(
        own_dovecot: Dovecot, sink: RecordingSink, store: MemoryCheckpoints,
        caplog: pytest.LogCaptureFixture) -> None:
    # Given three replies handled
    caplog.set_level(logging.INFO, logger="worker.adapters")
    account = own_dovecot.add_user()
    for n in range(3):
        own_dovecot.append(account, "INBOX", message(n))
    mailbox = make(account, sink, store)
    with running(mailbox):
        sink.wait_for_records(3)
        # When the folder gets a new UIDVALIDITY (server restarted, indexes rebuilt)
        old, new = own_dovecot.reset_uidvalidity(account)
        # Then the watcher rescans: the old three are handed again but are not new records
        sink.wait_for_calls(6, timeout_s=10)
        # And a reply after the reset is recorded
        own_dovecot.append(account, "INBOX", message(3))
        sink.wait_for_records(4)
    assert [call.new for call in sink.calls] == [True] * 3 + [False] * 3 + [True]
    assert store.load_checkpoint("default", "INBOX") is not None
    assert store.load_checkpoint("default", "INBOX").uidvalidity == new  # type: ignore[union-attr]
    assert any(f"old={old} new={new}" in r.getMessage() for r in caplog.records)


# -- polling ---------------------------------------------------------------------------------

def test_polling_when_the_server_has_no_idle(dovecot_noidle: Dovecot, sink: RecordingSink,
                                             store: MemoryCheckpoints,
                                             caplog: pytest.LogCaptureFixture) -> None:
    # Given a server without IDLE and a 0.3 s poll interval
    caplog.set_level(logging.INFO, logger="worker.adapters")
    account = dovecot_noidle.add_user()
    mailbox = make(account, sink, store, poll_interval_s=0.3)
    with running(mailbox):
        # When replies arrive / Then polling finds them
        dovecot_noidle.append(account, "INBOX", message(1))
        sink.wait_for_records(1, timeout_s=3)
        # And a fence still wakes the poller at once
        dovecot_noidle.append(account, "INBOX", message(2))
        assert mailbox.fence(5.0)
        assert len(sink.records) == 2
    assert any("mode=poll" in r.getMessage() for r in caplog.records)


def test_polling_when_idle_is_switched_off(dovecot: Dovecot, imap_account: Account,
                                           sink: RecordingSink, store: MemoryCheckpoints,
                                           caplog: pytest.LogCaptureFixture) -> None:
    # Given idle = false in the settings / When a reply arrives / Then polling finds it
    caplog.set_level(logging.INFO, logger="worker.adapters")
    mailbox = make(imap_account, sink, store, idle=False, poll_interval_s=0.3)
    with running(mailbox):
        dovecot.append(imap_account, "INBOX", message(1))
        sink.wait_for_records(1, timeout_s=3)
    assert any("mode=poll" in r.getMessage() for r in caplog.records)


# -- odd mail --------------------------------------------------------------------------------

def test_huge_message_is_cut_at_max_bytes(dovecot: Dovecot, imap_account: Account,
                                          sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given a 20 MB reply (a big attachment) followed by a small one
    body = b"Content-Type: application/octet-stream\r\n\r\n" + (b"A" * 76 + b"\r\n") * (20 * MIB // 78)
    raw = message("huge", body)
    dovecot.append(imap_account, "INBOX", raw)
    dovecot.append(imap_account, "INBOX", message("small"))
    # When the watcher reads them
    with running(make(imap_account, sink, store)):
        sink.wait_for_records(2, timeout_s=10)
    # Then only max_bytes of the big one were fetched, with its real size, and no crash
    huge = sink.calls[0].message
    assert len(huge.data) == 2 * MIB and huge.size == len(raw)
    assert huge.data == raw[:2 * MIB]
    assert sink.calls[1].message.data == message("small")


def test_broken_mime_and_unknown_charset_are_handed_over_as_bytes(
        dovecot: Dovecot, imap_account: Account, sink: RecordingSink,
        store: MemoryCheckpoints) -> None:
    # Given a reply with a never-closed multipart and one in a charset nobody knows
    broken = (b"From: lead@example.test\r\nMessage-ID: <broken@example.test>\r\n"
              b"Content-Type: multipart/mixed; boundary=\"zz\"\r\n\r\n--zz\r\n"
              b"Content-Type: text/plain\r\n\r\nhalf a mess\xff\xfe\r\n--z")
    klingon = (b"From: lead@example.test\r\nMessage-ID: <klingon@example.test>\r\n"
               b"Subject: =?x-klingon?q?=E4=F6?=\r\n"
               b"Content-Type: text/plain; charset=x-klingon\r\n\r\n\xe4\xf6\xfc\x81\r\n")
    dovecot.append(imap_account, "INBOX", broken)
    dovecot.append(imap_account, "INBOX", klingon)
    # When the watcher reads them / Then both arrive byte for byte
    with running(make(imap_account, sink, store)):
        sink.wait_for_records(2)
    assert [call.message.data for call in sink.calls] == [broken, klingon]


# -- lifecycle -------------------------------------------------------------------------------

def test_stop_while_in_idle_exits_within_a_second(imap_account: Account, sink: RecordingSink,
                                                  store: MemoryCheckpoints) -> None:
    # Given a watcher sitting in IDLE
    mailbox = make(imap_account, sink, store)
    stop = threading.Event()
    mailbox.start(stop)
    wait_until(lambda: mailbox.is_watching, 5, "watching")
    time.sleep(0.3)
    # When stop is set
    started = time.monotonic()
    stop.set()
    mailbox.join(2)
    # Then the thread is gone within a second, and the lease is released
    assert mailbox._thread is not None and not mailbox._thread.is_alive()
    assert time.monotonic() - started < 1.0
    assert store.holder("default") is None


def test_two_watchers_share_one_lease(dovecot: Dovecot, imap_account: Account,
                                      sink: RecordingSink, store: MemoryCheckpoints) -> None:
    # Given two workers watching the same mailbox through one store
    first = make(imap_account, sink, store, "w1", lease_s=1.5)
    second = make(imap_account, sink, store, "w2", lease_s=1.5)
    stop_first, stop_second = threading.Event(), threading.Event()
    first.start(stop_first)
    second.start(stop_second)
    try:
        wait_until(lambda: first.is_watching or second.is_watching, 5, "one watches")
        time.sleep(1.0)  # several lease renewals
        # Then only one of them watches
        assert first.is_watching != second.is_watching
        holder, other = (first, second) if first.is_watching else (second, first)
        stop_holder = stop_first if holder is first else stop_second
        assert store.holder("default") == holder.worker_id
        # When replies arrive / Then each is handed over once
        for n in range(3):
            dovecot.append(imap_account, "INBOX", message(n))
        sink.wait_for_records(3)
        time.sleep(0.3)
        assert len(sink.calls) == 3
        # When the watching worker stops / Then the other takes over and nothing is lost
        stop_holder.set()
        holder.join(2)
        dovecot.append(imap_account, "INBOX", message(3))
        wait_until(lambda: other.is_watching, 5, "the other took over")
        sink.wait_for_records(4)
        assert sink.uids() == ["1", "2", "3", "4"]
        assert store.holder("default") == other.worker_id
    finally:
        stop_first.set()
        stop_second.set()
        first.join(2)
        second.join(2)
