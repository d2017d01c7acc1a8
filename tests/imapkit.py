"""The IMAP watcher tests' helpers: messages, a watcher on a test account, and the `sink`
and `store` fixtures (in-memory fakes of the ports the watcher writes to)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from tests.inbound_fakes import MemoryCheckpoints, RecordingSink
from tests.servers.dovecot import Account
from worker.adapters.imap import ImapMailbox

MIB = 1024 * 1024


def message(n: int | str, body: bytes = b"Thanks, call me tomorrow.\r\n") -> bytes:
    return (b"From: Lead <lead@example.test>\r\nTo: dana@acme.test\r\n"
            + f"Message-ID: <reply-{n}@example.test>\r\nSubject: Re: your report {n}\r\n".encode()
            + b"\r\n" + body)


def wait_until(predicate: Callable[[], bool], timeout_s: float = 5.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout_s}s: {what}")
        time.sleep(0.01)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@pytest.fixture
def sink() -> RecordingSink:
    return RecordingSink()


@pytest.fixture
def store() -> MemoryCheckpoints:
    return MemoryCheckpoints()


def make(account: Account, sink: RecordingSink, store: MemoryCheckpoints,
         worker: str = "w1", *, name: str = "default", lease_s: float = 30.0,
         max_bytes: int = 2 * MIB, **overrides: Any) -> ImapMailbox:
    ssl_context = overrides.pop("ssl_context", None)
    # These tests put mail in before a watcher's first start and expect it read.
    overrides.setdefault("read_existing", True)
    settings = account.imap_settings(timeout_s=5.0, **overrides)
    return ImapMailbox(name, settings, sink, store, worker, max_bytes=max_bytes,
                       lease_s=lease_s, ssl_context=ssl_context)


@contextmanager
def running(*mailboxes: ImapMailbox, watching: bool = True) -> Iterator[threading.Event]:
    """Start the watchers (and wait until the first one watches); stop and join after."""
    stop = threading.Event()
    for mailbox in mailboxes:
        mailbox.start(stop)
    try:
        if watching:
            wait_until(lambda: mailboxes[0].is_watching, 5, "watcher connected")
        yield stop
    finally:
        stop.set()
        for mailbox in mailboxes:
            mailbox.join(5)
            assert mailbox._thread is not None and not mailbox._thread.is_alive()
