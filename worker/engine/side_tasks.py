"""The loop's supervised side tasks: the ledger, the heartbeat, housekeeping (campaign
reloads, notifications, the digest, the WAL checkpoint), the jobs (webhook delivery), the HTTP
door and the inbox watcher threads. Any of them that dies stops the worker with exit 1 and a
log line saying why, never a hang (``action=side_task_died``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any, TypeVar

from worker.config import Settings
from worker.engine.contracts import LoopStore, Notifier, SideJob
from worker.engine.ledger import Ledger
from worker.errors import StoreError
from worker.ports import Mailbox

log = logging.getLogger(__name__)
R = TypeVar("R")


class SideTasks:
    """Starts, supervises and stops what runs beside the loop.

    Args:
        settings, worker_id, store, notify: as the ``Runner`` is given them.
        ledger: failed with the error if its task dies (the mails waiting on it learn why).
        mailboxes: the inbox watchers; their threads are started with ``thread_stop``.
        reload_catalog: re-reads edited campaigns; True if they changed.
        jobs: more side tasks by name, run until stopped (webhooks).
        stop_event, wake_event: the loop's; a death sets ``stop_event``.
        pool: the executor the loop's database calls run on.
    """

    def __init__(self, *, settings: Settings, worker_id: str, store: LoopStore,
                 notify: Notifier, ledger: Ledger, mailboxes: Sequence[Mailbox],
                 reload_catalog: Callable[[], bool], jobs: Mapping[str, SideJob],
                 stop_event: asyncio.Event, wake_event: asyncio.Event, pool: Executor) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.store = store
        self.notify = notify
        self.ledger = ledger
        self.mailboxes = mailboxes
        self.reload_catalog = reload_catalog
        self.jobs = dict(jobs)
        self.stop_event = stop_event
        self.wake_event = wake_event
        self.pool = pool
        self.thread_stop = threading.Event()
        self.tasks: list[asyncio.Task[Any]] = []
        self.error: str | None = None  # why a side task died, if one did
        self.loop: asyncio.AbstractEventLoop | None = None

    async def start(self, once: bool,
                    start_http: Callable[[], Awaitable[asyncio.Task[Any] | None]]) -> None:
        """Start the ledger and the watchers; unless ``once``, the periodic tasks, the jobs
        and the HTTP door. What started is stopped by ``stop`` even if a later start fails."""
        self.loop = asyncio.get_running_loop()
        self.supervise(asyncio.create_task(self.ledger.run(), name="ledger"))
        for mailbox in self.mailboxes:
            mailbox.start(self.thread_stop, self._watcher_died)
        if once:
            return
        self.supervise(asyncio.create_task(self._heartbeat(), name="heartbeat"))
        self.supervise(asyncio.create_task(self._housekeeping(), name="housekeeping"))
        for name, job in self.jobs.items():
            self.supervise(asyncio.create_task(job(self.stop_event), name=name))
        server = await start_http()
        if server is not None:
            self.supervise(server)

    def add(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """An unsupervised task stopped with the others (the render process's warm-up)."""
        self.tasks.append(asyncio.create_task(coro, name=name))

    def supervise(self, task: asyncio.Task[Any]) -> asyncio.Task[Any]:
        """A side task that ends before the worker stops (an exception, a cancel, a return)
        stops the worker with exit 1, never a hang."""
        def died(done: asyncio.Task[Any]) -> None:
            if self.stop_event.is_set() and (done.cancelled() or done.exception() is None):
                return  # stopped by stop()
            exc = None if done.cancelled() else done.exception()
            error = repr(exc) if exc is not None else (
                "cancelled" if done.cancelled() else "returned")
            self._died(done.get_name(), error)
            if done.get_name() == "ledger":
                self.ledger.fail_pending(exc or RuntimeError(error))
        task.add_done_callback(died)
        self.tasks.append(task)
        return task

    def _watcher_died(self, name: str, exc: BaseException) -> None:
        """Called on a watcher's own thread when it dies: hand the news to the loop (the
        task is named after the mailbox: ``task=mailbox:NAME``)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._died, f"mailbox:{name}", repr(exc))

    def _died(self, name: str, error: str) -> None:
        log.error("action=side_task_died task=%s error=%r", name, error)
        if self.error is None:
            self.error = f"{name}: {error}"
        self.stop_event.set()

    async def stop(self) -> None:
        """Cancel the tasks and wait for them; join the watcher threads."""
        self.thread_stop.set()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for mailbox in self.mailboxes:
            await asyncio.to_thread(mailbox.join, self.settings.worker.grace_s)

    async def send_notifications(self) -> None:
        """Send the queued notifications, recording each result."""
        pending = await self._db(self.store.unsent_notifications)
        if not pending:
            return
        for note in pending:
            error = await self.notify.send(note)
            await self._db(self.store.mark_notification, note.id, error)

    async def _heartbeat(self) -> None:
        while not self.stop_event.is_set():
            try:
                await self._db(self.store.heartbeat, self.worker_id)
                await self._db(self.store.renew_claims, self.worker_id,
                               self.settings.worker.lease_s)
            except StoreError as exc:
                log.error("action=heartbeat_failed error=%r", str(exc))
            await self._wait_stop(self.settings.worker.heartbeat_s)

    async def _housekeeping(self) -> None:
        while not self.stop_event.is_set():
            try:
                if await asyncio.to_thread(self.reload_catalog):
                    self.wake_event.set()
                await self.send_notifications()
                await asyncio.to_thread(self.notify.digest_if_due)
                await asyncio.to_thread(self.store.checkpoint)
            except Exception as exc:  # noqa: BLE001 - a side task must not stop the worker
                log.error("action=housekeeping_failed error=%r", str(exc))
            await self._wait_stop(2.0)

    async def _wait_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)
