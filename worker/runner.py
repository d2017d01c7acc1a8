"""The worker loop: claim due work, plan it, hand it to the channels (``delivery``); side
tasks; shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from worker.delivery import Delivery, Ledger, Pause
from worker.errors import StoreError
from worker.sending import Job
from worker.signals import EARLY_STOP

if TYPE_CHECKING:
    from worker.app import App
    from worker.rendering import RenderProcess

log = logging.getLogger(__name__)
R = TypeVar("R")
RENDER_BATCH_MIN = 16  # smaller batches (a lone speed-to-lead mail) render here


class Runner(Delivery):
    """`nurture run`: sends due steps, watches the inbox, serves HTTP, until SIGTERM."""

    def __init__(self, app: App, once: bool = False) -> None:
        self.app = app
        self.once = once
        self.settings = app.settings
        self.stop_event = asyncio.Event()
        self.thread_stop = threading.Event()
        self.wake_event = asyncio.Event()
        self.drained = asyncio.Event()
        self.queues: dict[str, asyncio.Queue[Job]] = {}
        self.channel_tasks: list[asyncio.Task[None]] = []
        self.busy: set[asyncio.Task[Any]] = set()
        self.inflight = 0
        self.stats: Counter[str] = Counter()
        self.timings: defaultdict[str, float] = defaultdict(float)
        self.plan_pool = ThreadPoolExecutor(1, thread_name_prefix="nurture-plan")
        self.ledger_pool = ThreadPoolExecutor(1, thread_name_prefix="nurture-ledger")
        self.ledger = Ledger(app, self.ledger_pool)
        self.throttled_until: dict[str, Pause] = {}
        self.started_at = time.monotonic()
        self.last_send_ok_at: datetime | None = None
        self.smtp_failing_since: datetime | None = None  # no send accepted since then
        self.started_at_wall = app.clock.now()
        self.renderer: RenderProcess | None = None
        self.renderer_ready = False
        self.last_send_error: str | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # --- public -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Speed to lead: look for due work now (thread-safe)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self.wake_event.set)

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)

    async def run(self) -> int:
        self.loop = asyncio.get_running_loop()
        app = self.app
        app.runner = self
        side: list[asyncio.Task[Any]] = []
        restore = self._install_signals()
        if EARLY_STOP.is_set():
            self.stop_event.set()  # SIGTERM arrived while the process was starting
        try:
            await self._db(app.start_worker)
        except BaseException:
            restore()
            raise
        try:
            # Everything started from here on is stopped by _shutdown, even if a later start
            # fails (a busy HTTP port, an unreachable mailbox).
            if not self.once:
                self.renderer = app.render_process()
                if self.renderer is not None:
                    side.append(asyncio.create_task(self._warm_up(self.renderer),
                                                    name="renderer"))
            side.append(asyncio.create_task(self.ledger.run(), name="ledger"))
            for mailbox in app.inbound:
                mailbox.start(self.thread_stop)
            if not self.once:
                side.append(asyncio.create_task(self._heartbeat(), name="heartbeat"))
                side.append(asyncio.create_task(self._housekeeping(), name="housekeeping"))
                server = await app.start_http(self)
                if server is not None:
                    side.append(server)
            log.info("action=worker_start worker=%s once=%s outbound=%s inbound=%s "
                     "campaigns=%d loop=%s", app.worker_id, self.once,
                     self.settings.outbound.transport, self.settings.inbound.transport,
                     len(app.catalog.campaigns), type(self.loop).__module__.split(".")[0])
            if not app.db.is_sqlite and not self.settings.http.public_url:
                log.warning("action=public_url_missing detail=%r", "http.public_url is not set: "
                            "unsubscribe links point at this worker's own http.host:http.port, "
                            "so they depend on which worker sent the mail; set it to the one "
                            "address all workers answer on (the proxy's)")
            await self._main()
        finally:
            await self._shutdown(side)
            restore()
            app.runner = None
        log.info("action=worker_stop worker=%s sent=%d deferred=%d failed=%d bounced=%d "
                 "withdrawn=%d tasks=%d uptime_s=%.1f", app.worker_id, self.stats["accepted"],
                 self.stats["deferred"], self.stats["failed"], self.stats["bounced"],
                 self.stats["withdrawn"], self.stats["tasks"], time.monotonic() - self.started_at)
        log.info("action=worker_timings plan_s=%.2f smtp_s=%.2f ledger_commits=%d "
                 "ledger_s=%.2f mails_per_commit=%.1f", self.timings["plan_s"],
                 self.timings["smtp_s"], self.ledger.commits, self.ledger.commit_s,
                 self.ledger.committed / max(self.ledger.commits, 1))
        return 0

    # --- main loop ----------------------------------------------------------------------------

    async def _main(self) -> None:
        # Up to two batches in flight: the next one is claimed and rendered while the
        # channels send the current one.
        batch = self.settings.worker.batch_size
        while not self.stop_event.is_set():
            claimed = 0
            ready = self.inflight <= 2 * batch
            if ready:
                claimed = await self._pass(batch)
            if self.once:
                await self._send_notifications()
                if claimed == 0:
                    await self._wait_drained()
                    if await self._db(self._due_now) == 0:
                        break
                    await self._sleep()  # due, but claimed by another worker: not a busy loop
                continue
            if claimed == 0 or not ready:
                await self._sleep()

    def _due_now(self) -> int:
        return self.app.db.due_backlog(self.app.clock.now())[0]

    async def _pass(self, room: int) -> int:
        """Fence the inbox, claim up to ``room`` due enrolments, plan them, queue the mails."""
        if not await self._fence():
            return 0
        app = self.app
        now = app.clock.now()
        started = time.perf_counter()
        try:
            count, jobs = await self._plan(now, room)
        except (StoreError, BrokenProcessPool) as exc:
            log.error("action=claim_failed error=%r", str(exc))
            if isinstance(exc, BrokenProcessPool) and self.renderer is not None:
                # The render process died: render in this process from now on.
                self.renderer.close()
                self.renderer, self.renderer_ready = None, False
            await asyncio.sleep(1.0)
            return 0
        self.timings["plan_s"] += time.perf_counter() - started
        if not count:
            return 0
        self.stats["planned"] += len(jobs)
        for job in jobs:
            if job.envelope.message_id in self.ledger.sending:
                # Planned again while its first copy is still with a channel (its claim was
                # dropped and taken again meanwhile): one copy is enough.
                self.stats["replanned_in_flight"] += 1
                log.warning("action=replanned_in_flight message_id=%s", job.envelope.message_id)
                continue
            self.ledger.sending.add(job.envelope.message_id)
            self._queue(job.envelope.mailbox).put_nowait(job)
            self.inflight += 1
        if jobs:
            self.drained.clear()
        return count

    async def _plan(self, now: datetime, room: int) -> tuple[int, list[Job]]:
        """Claim; read, plan and render (in the render process for a big batch); record."""
        app, lease = self.app, self.settings.worker.lease_s
        rows = await self._store(app.db.claim_rows, app.worker_id, now, room, lease)
        if not rows:
            return 0, []
        if self.renderer is not None and self.renderer_ready and len(rows) >= RENDER_BATCH_MIN:
            # Only the claim and the record are written here; the reads, the planning and the
            # rendering run on the other core.
            planned = await asyncio.wrap_future(self.renderer.plan(rows, now,
                                                                   app.catalog.digest))
            self.stats["render_process_batches"] += 1
        else:
            # Reads and renders only: in a thread, never on the event loop (a slow template
            # must not stop HTTP and the other campaigns; the sandbox bounds each render).
            planned = await self._db(app.planner.plan_claimed, rows, now)
        return len(rows), await self._store(app.planner.record, planned, now)

    async def _warm_up(self, renderer: RenderProcess) -> None:
        try:
            await asyncio.wrap_future(renderer.warm_up())
        except Exception as exc:  # noqa: BLE001 - rendering then stays in this process
            log.error("action=render_process_failed error=%r", str(exc))
            return
        self.renderer_ready = renderer is self.renderer
        log.info("action=render_process_ready")

    async def _fence(self) -> bool:
        if not self.app.inbound:
            return True
        timeout = 10.0
        results = await asyncio.gather(*(asyncio.to_thread(mb.fence, timeout)
                                          for mb in self.app.inbound))
        if all(results):
            return True
        self.stats["fence_failed"] += 1
        if self.stats["fence_failed"] % 30 == 1:
            log.warning("action=fence_failed detail=%r", "the inbox could not be read; sending "
                        "waits so that no one who replied is mailed")
        await asyncio.sleep(1.0)
        return False

    async def _sleep(self) -> None:
        """Until the next due time, a wake-up, or a short poll (other processes enrol too)."""
        app = self.app
        poll = 1.0
        # Only a drain from here on wakes the loop: one that happened before this pass claimed
        # nothing would wake it again at once, a busy loop while mail waits on the server.
        self.drained.clear()
        try:
            nxt = await self._db(app.db.next_due_at)
        except StoreError:
            nxt = None
        delay = poll
        if nxt is not None:
            delay = min(poll, max((nxt - app.clock.now()).total_seconds(), 0.0))
        if delay <= 0 and self.inflight == 0:
            delay = 0.05  # due work that could not be claimed yet (a lease still running)
        waiters = [asyncio.create_task(self.wake_event.wait()),
                   asyncio.create_task(self.stop_event.wait())]
        if self.inflight:
            waiters.append(asyncio.create_task(self.drained.wait()))
        _, pending = await asyncio.wait(waiters, timeout=delay,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        self.wake_event.clear()

    async def _wait_drained(self) -> None:
        while self.inflight and not self.stop_event.is_set():
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=0.5)

    # --- side tasks -----------------------------------------------------------------------------

    async def _heartbeat(self) -> None:
        app = self.app
        while not self.stop_event.is_set():
            try:
                await self._db(app.db.heartbeat, app.worker_id)
                await self._db(app.db.renew_claims, app.worker_id, self.settings.worker.lease_s)
            except StoreError as exc:
                log.error("action=heartbeat_failed error=%r", str(exc))
            await self._wait_stop(self.settings.worker.heartbeat_s)

    async def _housekeeping(self) -> None:
        while not self.stop_event.is_set():
            try:
                if await asyncio.to_thread(self.app.reload_catalog_if_changed):
                    self.wake_event.set()
                await self._send_notifications()
                await asyncio.to_thread(self.app.task_digest_if_due)
                await asyncio.to_thread(self.app.db.checkpoint)
            except Exception as exc:  # noqa: BLE001 - a side task must not stop the worker
                log.error("action=housekeeping_failed error=%r", str(exc))
            await self._wait_stop(2.0)

    async def _send_notifications(self) -> None:
        pending = await self._db(self.app.db.unsent_notifications)
        if not pending:
            return
        for note in pending:
            error = await self.app.send_notification(note)
            await self._db(self.app.db.mark_notification, note.id, error)

    async def _wait_stop(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)

    async def _store(self, fn: Callable[..., R], *args: Any) -> R:
        """Writes of the sending path: on SQLite in the loop itself, like the ledger (one
        writer, no waiting on another thread's write lock); on PostgreSQL in a thread."""
        if self.ledger.inline:
            return fn(*args)
        return await self._db(fn, *args)

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.plan_pool, fn, *args)

    # --- shutdown -------------------------------------------------------------------------------

    def _install_signals(self) -> Callable[[], None]:
        loop = asyncio.get_running_loop()
        installed = []
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                pass  # not the main thread (tests), or no signals on this platform

        def restore() -> None:
            for sig in installed:
                loop.remove_signal_handler(sig)
        return restore

    def _on_signal(self, sig: signal.Signals) -> None:
        log.info("action=signal signal=%s detail=%r", sig.name, "stopping: no new work, "
                 f"finishing mails in flight (grace {self.settings.worker.grace_s}s)")
        self.stop_event.set()

    async def _shutdown(self, side: list[asyncio.Task[Any]]) -> None:
        self.stop_event.set()
        self.thread_stop.set()
        dropped: list[int] = []
        for queue in self.queues.values():
            while not queue.empty():
                job = queue.get_nowait()
                dropped.append(job.enrollment_id)
                self.ledger.sending.discard(job.envelope.message_id)
                self.inflight -= 1
        idle = [t for t in self.channel_tasks if not t.done() and t not in self.busy]
        for task in idle:
            task.cancel()  # blocked on an empty queue: nothing in flight
        busy = [t for t in self.channel_tasks if not t.done() and t not in idle]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=self.settings.worker.grace_s)
            for task in pending:
                task.cancel()  # past the grace period: the mail stays handed over, resent later
        await asyncio.gather(*self.channel_tasks, return_exceptions=True)
        try:
            released = await self._db(self.app.db.release_claims, self.app.worker_id, None)
            await self._db(self.app.stop_worker)
        except StoreError as exc:
            released = 0
            log.error("action=release_failed error=%r", str(exc))
        for task in side:
            task.cancel()
        await asyncio.gather(*side, return_exceptions=True)
        for mailbox in self.app.inbound:
            await asyncio.to_thread(mailbox.join, self.settings.worker.grace_s)
        await self.app.sender.close()
        if self.renderer is not None:
            self.renderer.close()
        self.app.reset_doors()
        self.plan_pool.shutdown(wait=False)
        self.ledger_pool.shutdown(wait=False)
        log.info("action=claims_released count=%d unsent_queued=%d", released, len(dropped))


