"""The embedded Maildir inbox against a real temporary Maildir."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.inbound_fakes import MemoryCheckpoints, RecordingSink
from worker.adapters.maildir_inbox import MaildirMailbox


def message(n: int | str) -> bytes:
    return (f"From: lead@example.test\r\nMessage-ID: <reply-{n}@example.test>\r\n"
            f"Subject: Re: report {n}\r\n\r\nSounds good.\r\n").encode()


def deliver(maildir: Path, name: str, data: bytes) -> Path:
    """Deliver like an MTA: write in tmp/, then rename into new/."""
    tmp = maildir / "tmp" / name
    tmp.write_bytes(data)
    target = maildir / "new" / name
    tmp.rename(target)
    return target


def wait_until(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout_s}s")
        time.sleep(0.01)


@pytest.fixture
def maildir(tmp_path: Path) -> Path:
    return tmp_path / "var" / "inbox"


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def running(maildir: Path, sink: RecordingSink) -> Iterator[MaildirMailbox]:
    """A started Maildir watcher polling every 0.05 s; stopped and joined after the test."""
    mailbox = MaildirMailbox("default", maildir, sink, poll_interval_s=0.05)
    stop = threading.Event()
    mailbox.start(stop)
    yield mailbox
    stop.set()
    mailbox.join(2)
    assert mailbox._thread is not None and not mailbox._thread.is_alive()


def test_start_creates_the_maildir(running: MaildirMailbox, maildir: Path) -> None:
    # Given a started watcher / Then tmp/, new/ and cur/ exist
    assert all((maildir / sub).is_dir() for sub in ("tmp", "new", "cur"))


def test_new_files_are_handed_over_and_moved_to_cur(running: MaildirMailbox, maildir: Path,
                                                    sink: RecordingSink) -> None:
    # When two replies are delivered
    deliver(maildir, "1700000000.M1P1.host", message(1))
    deliver(maildir, "1700000001.M2P1.host", message(2))
    # Then both are handed over once, byte for byte, and move to cur/ with ":2,"
    sink.wait_for_records(2, timeout_s=3)
    wait_until(lambda: not list((maildir / "new").iterdir()))
    assert sorted(p.name for p in (maildir / "cur").iterdir()) == [
        "1700000000.M1P1.host:2,", "1700000001.M2P1.host:2,"]
    first = sink.calls[0].message
    assert (first.uid, first.uidvalidity, first.data) == ("1700000000.M1P1.host", 0, message(1))
    assert first.size == len(message(1)) and first.received_at is not None
    assert running.last_success_at is not None
    time.sleep(0.2)
    assert len(sink.calls) == 2


def test_fence_reads_new_synchronously(maildir: Path, sink: RecordingSink) -> None:
    # Given a watcher that polls rarely
    mailbox = MaildirMailbox("default", maildir, sink, poll_interval_s=60)
    stop = threading.Event()
    mailbox.start(stop)
    try:
        time.sleep(0.05)
        # When a reply arrives and a fence runs right away
        deliver(maildir, "a.host", message(1))
        assert mailbox.fence(2.0)
        # Then it was handed over before fence returned
        assert [c.message.uid for c in sink.calls] == ["a.host"]
        assert (maildir / "cur" / "a.host:2,").exists()
    finally:
        stop.set()
        mailbox.join(2)


def test_fence_before_start_creates_the_maildir(maildir: Path, sink: RecordingSink) -> None:
    # Given no Maildir yet / When a fence runs / Then it succeeds and creates it
    mailbox = MaildirMailbox("default", maildir, sink)
    assert mailbox.fence(1.0)
    assert (maildir / "new").is_dir()


def test_unreadable_file_is_logged_once_and_left(running: MaildirMailbox, maildir: Path,
                                                 sink: RecordingSink,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Given something in new/ that cannot be read as a file, next to a good reply
    caplog.set_level(logging.WARNING, logger="worker.adapters")
    (maildir / "new" / "weird.host").mkdir()
    deliver(maildir, "good.host", message(1))
    # When the watcher polls a few times
    sink.wait_for_records(1, timeout_s=3)
    time.sleep(0.3)
    # Then the good reply went through, the bad entry stays, and it was logged once
    assert (maildir / "new" / "weird.host").is_dir()
    warnings = [r for r in caplog.records if "action=maildir_unreadable" in r.getMessage()]
    assert len(warnings) == 1 and "file=weird.host" in warnings[0].getMessage()
    assert running._thread is not None and running._thread.is_alive()


def test_sink_failure_leaves_the_file_for_the_next_poll(maildir: Path) -> None:
    # Given a sink whose database fails once
    sink = RecordingSink(fail_times=1)
    mailbox = MaildirMailbox("default", maildir, sink, poll_interval_s=60)
    mailbox.ensure_maildir()
    deliver(maildir, "a.host", message(1))
    # When a fence runs / Then it reports failure and the file stays in new/
    assert mailbox.fence(1.0) is False
    assert (maildir / "new" / "a.host").exists()
    # When the next one runs / Then the reply goes through
    assert mailbox.fence(1.0)
    assert [c.message.uid for c in sink.calls] == ["a.host"]


def test_restart_does_not_hand_processed_files_again(maildir: Path, sink: RecordingSink) -> None:
    # Given one reply processed by a first run
    first = MaildirMailbox("default", maildir, sink)
    first.ensure_maildir()
    deliver(maildir, "a.host", message(1))
    assert first.fence(1.0)
    # When a second run starts and another reply arrives
    second = MaildirMailbox("default", maildir, sink)
    deliver(maildir, "b.host", message(2))
    assert second.fence(1.0)
    # Then only the new one was handed over
    assert [c.message.uid for c in sink.calls] == ["a.host", "b.host"]


def test_tmp_and_dot_files_are_ignored(maildir: Path, sink: RecordingSink) -> None:
    # Given a half-written delivery in tmp/ and a dot file in new/
    mailbox = MaildirMailbox("default", maildir, sink)
    mailbox.ensure_maildir()
    (maildir / "tmp" / "partial.host").write_bytes(b"From: x\r\n")
    (maildir / "new" / ".hidden").write_bytes(message(1))
    # When a fence runs / Then neither is handed over nor moved
    assert mailbox.fence(1.0)
    assert sink.calls == []
    assert (maildir / "new" / ".hidden").exists()


def test_huge_file_is_cut_at_max_bytes(maildir: Path, sink: RecordingSink) -> None:
    # Given a 5 MB reply and a 1 MB limit / When it is read
    mailbox = MaildirMailbox("default", maildir, sink, max_bytes=1024 * 1024)
    mailbox.ensure_maildir()
    raw = message("big") + b"x" * (5 * 1024 * 1024)
    deliver(maildir, "big.host", raw)
    assert mailbox.fence(2.0)
    # Then only max_bytes arrive, with the real size
    handed = sink.calls[0].message
    assert len(handed.data) == 1024 * 1024 and handed.size == len(raw)


def test_concurrent_fences_and_poller_hand_each_file_once(maildir: Path,
                                                         sink: RecordingSink) -> None:
    # Given a fast poller and several threads fencing while 100 replies arrive
    mailbox = MaildirMailbox("default", maildir, sink, poll_interval_s=0.01)
    stop = threading.Event()
    mailbox.start(stop)
    fencing = threading.Event()

    def fence_loop() -> None:
        while not fencing.is_set():
            assert mailbox.fence(2.0)

    threads = [threading.Thread(target=fence_loop) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        for n in range(100):
            deliver(maildir, f"{n:03d}.host", message(n))
        sink.wait_for_records(100, timeout_s=5)
    finally:
        fencing.set()
        for thread in threads:
            thread.join(5)
        stop.set()
        mailbox.join(2)
    # Then every reply was handed over exactly once
    assert len(sink.calls) == 100
    assert len(os.listdir(maildir / "cur")) == 100


def test_stop_exits_promptly(maildir: Path, sink: RecordingSink) -> None:
    # Given a watcher with a long poll interval
    mailbox = MaildirMailbox("default", maildir, sink, poll_interval_s=30)
    stop = threading.Event()
    mailbox.start(stop)
    time.sleep(0.05)
    # When stop is set / Then the thread ends at once
    started = time.monotonic()
    stop.set()
    mailbox.join(2)
    assert mailbox._thread is not None and not mailbox._thread.is_alive()
    assert time.monotonic() - started < 0.5


def test_success_time_is_stored_when_a_store_is_given(maildir: Path,
                                                      sink: RecordingSink) -> None:
    # Given a checkpoint store / When the Maildir is read / Then the check time is stored
    store = MemoryCheckpoints()
    mailbox = MaildirMailbox("default", maildir, sink, checkpoints=store)
    assert mailbox.fence(1.0)
    assert len(store.saves) == 1 and store.saves[0][1] == mailbox.last_success_at
