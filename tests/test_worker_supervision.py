"""The loop's side tasks are supervised and its signal handlers are put back (issue 13).

A side task that dies (the ledger, the heartbeat, an inbox watcher's thread) stops the worker with exit 1 and a log line
saying why, instead of leaving every channel waiting forever. The fakes below wrap the real
database and are handed to the loop through its constructor (``App.make_runner``)."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_worker import setup_campaigns
from tests.workspace import make_app
from worker.adapters.db import Database
from worker.adapters.imap import ImapMailbox
from worker.adapters.maildir_inbox import MaildirMailbox
from worker.app import App
from worker.domain.send_rows import Outcome


class LedgerKiller(BaseException):
    """Not an ``Exception``: the ledger's own retry does not catch it, so its task dies."""


class Wrapped:
    """The real store, with one method replaced."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class DeadLedgerStore(Wrapped):
    def record(self, worker_id: str, outcomes: list[Outcome], hand_over: list[str]) -> set[str]:
        raise LedgerKiller("the first group commit kills the ledger task")


class DeadHeartbeatStore(Wrapped):
    def heartbeat(self, worker_id: str) -> None:
        raise RuntimeError("heartbeat bug")


class WatcherBug(BaseException):
    """Not an ``Exception``: the watcher's own retry does not catch it, so its thread dies."""


class DyingMaildir(MaildirMailbox):
    """A real Maildir watcher whose polling thread raises on its first scan (``fence``, the
    loop's own read, does not go through ``scan``)."""

    def scan(self) -> bool:
        raise WatcherBug("the watcher thread dies")


class DyingImap(ImapMailbox):
    """A real IMAP watcher whose thread raises outside its reconnect loop's retry."""

    def _acquire(self) -> bool:
        raise RuntimeError("lease bug")


def smtp_app(tmp: Path, server: ScriptedSmtpServer, **env: str) -> App:
    setup_campaigns(tmp)
    return make_app(tmp, OUTBOUND__TRANSPORT="smtp", SMTP__HOST="127.0.0.1",
                    SMTP__PORT=str(server.port), SMTP__CONNECTIONS="2", SMTP__TIMEOUT_S="2",
                    WORKER__GRACE_S="2", **env)


async def bounded(coro: Any) -> int:
    # Generous: the point is "it returns" rather than "it hangs forever".
    return int(await asyncio.wait_for(coro, timeout=60))


def test_a_dead_ledger_stops_the_worker_with_an_error(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    app = smtp_app(tmp_path, smtp_server)
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    caplog.set_level(logging.INFO)
    runner = app.make_runner(once=True, records=DeadLedgerStore(app.db))
    assert asyncio.run(bounded(runner.run())) == 1
    assert "action=side_task_died task=ledger" in caplog.text
    assert "LedgerKiller" in caplog.text
    assert smtp_server.messages == []  # nothing handed over without its record


def test_a_dead_heartbeat_stops_the_worker_with_an_error(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    app = smtp_app(tmp_path, smtp_server)
    caplog.set_level(logging.INFO)
    runner = app.make_runner(store=DeadHeartbeatStore(app.db))  # not --once: it runs for ever
    assert asyncio.run(bounded(runner.run())) == 1
    assert "action=side_task_died task=heartbeat error=\"RuntimeError('heartbeat bug')\"" \
        in caplog.text


def test_signal_handlers_are_put_back_after_a_run(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    app = smtp_app(tmp_path, smtp_server)
    seen: list[int] = []

    def mine(signum: int, frame: object) -> None:
        seen.append(signum)

    before_int = signal.getsignal(signal.SIGINT)
    previous = signal.signal(signal.SIGTERM, mine)
    try:
        assert asyncio.run(app.make_runner(once=True).run()) == 0
        assert signal.getsignal(signal.SIGTERM) is mine
        assert signal.getsignal(signal.SIGINT) is before_int
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_a_dead_inbox_watcher_thread_stops_the_worker_with_an_error(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    app = smtp_app(tmp_path, smtp_server)
    caplog.set_level(logging.INFO)
    mailbox = DyingMaildir("default", tmp_path / "dying", app.inbox, poll_interval_s=0.05)
    runner = app.make_runner(mailboxes=[mailbox])  # not --once: only the death stops it
    assert asyncio.run(bounded(runner.run())) == 1
    assert "action=side_task_died task=mailbox:default error=\"WatcherBug('the watcher " \
        "thread dies')\"" in caplog.text
    assert runner.side_task_error is not None and "WatcherBug" in runner.side_task_error


def test_an_imap_watcher_thread_that_dies_says_so_to_its_supervisor(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    heard: list[tuple[str, BaseException]] = []
    done = threading.Event()

    def on_died(name: str, exc: BaseException) -> None:
        heard.append((name, exc))
        done.set()

    mailbox = DyingImap("support", app.settings.imap, app.inbox, app.db, "w1")
    stop = threading.Event()
    mailbox.start(stop, on_died)
    assert done.wait(30)
    stop.set()
    mailbox.join(5)
    assert [(name, repr(exc)) for name, exc in heard] == [
        ("support", "RuntimeError('lease bug')")]
