"""The worker loop: claim due work, plan it, hand it to the dispatcher; ``--once``; signals;
shutdown. The supervised side tasks are ``side_tasks.SideTasks``. It imports nothing of the
composition root: ``App`` builds it with its collaborators (``App.runner_parts``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import Any, TypeVar

from worker.config import Settings
from worker.domain.catalog import Catalog
from worker.engine.contracts import LoopMetrics, LoopStore, Notifier, SideJob
from worker.engine.dispatch import Dispatcher, MailboxGuard, Pause
from worker.engine.ledger import Ledger, RecordStore
from worker.engine.planning import Job, Planner
from worker.engine.render_process import RenderProcess
from worker.engine.side_tasks import SideTasks
from worker.engine.signals import EARLY_STOP, stop_signals
from worker.errors import StoreError
from worker.ports import Clock, Mailbox, Sender

log = logging.getLogger(__name__)
R = TypeVar("R")
RENDER_BATCH_MIN = 16  # smaller batches (a lone speed-to-lead mail) render here
LANE_IDLE_S = 0.05     # how often an idle second planning lane looks for a backlog


class Runner:
    """`nurture run`: sends due steps, watches the inbox, serves HTTP, until SIGTERM.

    Args (keyword, built by ``App.runner_parts``):
        settings: the whole configuration (``worker``, ``outbound``, ``inbound``, ``http``).
        worker_id: this process's name in claims and leases.
        store: claims, due times, heartbeat, notifications.
        records: the sending store the ledger commits through (``record``).
        inline_store: write the sending path on the loop itself (SQLite).
        sender, mailboxes: the outbound and inbound doors.
        planner: plans claimed rows and records the plan; turns answers into outcomes.
        catalog: returns the campaigns as they are now.
        render_process: starts the second process, or returns None.
        metrics, clock: counters and time.
        notify: the notification use-case; on_bounce: the "address is dead" use-case.
        guard: holds the mail of a paused or signed-out mailbox; judges bounces.
        start, stop, reset_doors: the worker's registration (and SQLite lock), its end, and
            forgetting one-shot doors after a run.
        reload_catalog: re-reads edited campaigns; True if they changed.
        start_http: starts the HTTP door with this loop's state, or returns None.
        once: send what is due now and return (``--once``).
        jobs: more supervised side tasks by name, run until stopped (webhooks); not ``once``.
    """

    def __init__(self, *, settings: Settings, worker_id: str, store: LoopStore,
                 records: RecordStore, inline_store: bool, sender: Sender, mailboxes: Sequence[Mailbox],
                 planner: Planner, catalog: Callable[[], Catalog],
                 render_process: Callable[[], RenderProcess | None], metrics: LoopMetrics,
                 clock: Clock, notify: Notifier,
                 on_bounce: Callable[[int, int | None, str], None], guard: MailboxGuard,
                 start: Callable[[], None], stop: Callable[[], None],
                 reset_doors: Callable[[], None], reload_catalog: Callable[[], bool],
                 start_http: Callable[[Runner], Awaitable[asyncio.Task[Any] | None]],
                 once: bool = False, jobs: Mapping[str, SideJob] | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.store = store
        self.sender = sender
        self.mailboxes = mailboxes
        self.planner = planner
        self.catalog = catalog
        self.render_process = render_process
        self.metrics = metrics
        self.clock = clock
        self.start_worker, self.stop_worker = start, stop
        self.reset_doors = reset_doors
        self.start_http = start_http
        self.once = once
        self.stop_event = asyncio.Event()
        self.wake_event = asyncio.Event()
        self.plan_pool = ThreadPoolExecutor(1, thread_name_prefix="nurture-plan")
        self.ledger_pool = ThreadPoolExecutor(1, thread_name_prefix="nurture-ledger")
        self.ledger = Ledger(records, worker_id, self.ledger_pool, inline_store)
        self.dispatch = Dispatcher(sender, self.ledger, planner, metrics, clock, on_bounce,
                                   self._db, self.stop_event, settings.worker.batch_size, guard)
        # The dispatcher's counters, under the names the health page, tests and the
        # benchmark read (the same objects: the dispatcher alone changes them).
        self.stats: Counter[str] = self.dispatch.stats
        self.timings: defaultdict[str, float] = self.dispatch.timings
        self.throttled_until: dict[str, Pause] = self.dispatch.throttled_until
        self.started_at = time.monotonic()
        self.started_at_wall = clock.now()
        self.renderer: RenderProcess | None = None
        self.renderer_ready = False
        self.backlog = False  # the last pass claimed all it asked for: more is likely due
        self.loop: asyncio.AbstractEventLoop | None = None
        self.side = SideTasks(settings=settings, worker_id=worker_id, store=store, notify=notify,
                              ledger=self.ledger, mailboxes=mailboxes,
                              reload_catalog=reload_catalog, jobs=jobs or {},
                              stop_event=self.stop_event, wake_event=self.wake_event,
                              pool=self.plan_pool)

    # --- what others read (the HTTP door's health, tests, the benchmark) -----------------------

    @property
    def last_send_ok_at(self) -> datetime | None:
        """When a mail was last accepted."""
        return self.dispatch.last_send_ok_at

    @property
    def last_send_error(self) -> str | None:
        """The last server error, None once a mail is accepted again."""
        return self.dispatch.last_send_error

    @property
    def smtp_failing_since(self) -> datetime | None:
        """No send accepted since then."""
        return self.dispatch.smtp_failing_since

    @property
    def side_task_error(self) -> str | None:
        """Why a side task died, if one did."""
        return self.side.error

    # --- public -----------------------------------------------------------------------------

    def wake(self) -> None:
        """Speed to lead: look for due work now (thread-safe)."""
        loop = self.loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.wake_event.set)

    def stop(self) -> None:
        """Ask the loop to stop (thread-safe)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.stop_event.set)

    async def run(self) -> int:
        """Run until stopped; 0 on a clean stop, 1 if a side task died."""
        self.loop = asyncio.get_running_loop()
        with stop_signals(self._on_signal):
            if EARLY_STOP.is_set():
                self.stop_event.set()  # SIGTERM arrived while the process was starting
            await self._db(self.start_worker)
            try:
                # Everything started from here on is stopped by _shutdown, even if a later
                # start fails (a busy HTTP port, an unreachable mailbox).
                await self._start_side_tasks()
                await self._main()
            finally:
                await self._shutdown()
                self.loop = None
        s = self.stats
        log.info("action=worker_stop worker=%s sent=%d deferred=%d failed=%d bounced=%d "
                 "withdrawn=%d tasks=%d uptime_s=%.1f", self.worker_id, s["accepted"],
                 s["deferred"], s["failed"], s["bounced"], s["withdrawn"], s["tasks"],
                 time.monotonic() - self.started_at)
        log.info("action=worker_timings plan_s=%.2f smtp_s=%.2f ledger_commits=%d "
                 "ledger_s=%.2f mails_per_commit=%.1f", self.timings["plan_s"],
                 self.timings["smtp_s"], self.ledger.commits, self.ledger.commit_s,
                 self.ledger.committed / max(self.ledger.commits, 1))
        return 1 if self.side_task_error is not None else 0

    async def _start_side_tasks(self) -> None:
        if not self.once:
            self.renderer = self.render_process()
            if self.renderer is not None:
                self.side.add(self._warm_up(self.renderer), "renderer")
        await self.side.start(self.once, lambda: self.start_http(self))
        log.info("action=worker_start worker=%s once=%s outbound=%s inbound=%s "
                 "campaigns=%d loop=%s", self.worker_id, self.once,
                 self.settings.outbound.transport, self.settings.inbound.transport,
                 len(self.catalog().campaigns), type(self.loop).__module__.split(".")[0])
        if not self.ledger.inline and not self.settings.http.public_url:
            log.warning("action=public_url_missing detail=%r", "http.public_url is not set: "
                        "unsubscribe links point at this worker's own http.host:http.port, "
                        "so they depend on which worker sent the mail; set it to the one "
                        "address all workers answer on (the proxy's)")

    # --- main loop ----------------------------------------------------------------------------

    async def _main(self) -> None:
        # Up to two batches in flight: the next one is claimed and rendered while the
        # channels send the current one.
        lane = None
        if self.renderer is not None and not self.once:
            lane = self.side.supervise(asyncio.create_task(self._second_lane(),
                                                           name="planning-lane"))
        await self._first_lane()
        if lane is not None:
            await asyncio.wait([lane])  # the pass in its hands ends; then it sees the stop

    async def _first_lane(self) -> None:
        batch = self.settings.worker.batch_size
        while not self.stop_event.is_set():
            claimed = 0
            ready = self.dispatch.inflight <= 2 * batch
            if ready:
                claimed = await self._pass(batch)
            if self.once:
                await self.side.send_notifications()
                if claimed == 0:
                    await self.dispatch.wait_drained()
                    if await self._db(self._due_now) == 0:
                        break
                    await self._sleep()  # due, but claimed by another worker: not a busy loop
                continue
            if claimed == 0 or not ready:
                await self._sleep()

    async def _second_lane(self) -> None:
        """With the render process, a second lane plans while a backlog lasts (the last pass
        claimed all it asked for): it claims and records while the other lane's batch renders
        on the other core. Idle, it looks only at this process's state, never the database."""
        batch = self.settings.worker.batch_size
        while not self.stop_event.is_set():
            if self.backlog and self.dispatch.inflight <= 2 * batch:
                if await self._pass(batch):
                    self.stats["second_lane_batches"] += 1
            else:
                await asyncio.sleep(LANE_IDLE_S)

    def _due_now(self) -> int:
        return self.store.due_backlog(self.clock.now())[0]

    async def _pass(self, room: int) -> int:
        """Fence the inbox, claim up to ``room`` due enrolments, plan them, queue the mails."""
        if not await self._fence():
            self.backlog = False
            return 0
        now = self.clock.now()
        started = time.perf_counter()
        try:
            count, jobs = await self._plan(now, room)
        except (StoreError, BrokenProcessPool) as exc:
            log.error("action=claim_failed error=%r", str(exc))
            self.backlog = False
            if isinstance(exc, BrokenProcessPool) and self.renderer is not None:
                # The render process died: render in this process from now on.
                self.renderer.close()
                self.renderer, self.renderer_ready = None, False
            await asyncio.sleep(1.0)
            return 0
        self.timings["plan_s"] += time.perf_counter() - started  # summed over the lanes
        self.backlog = count >= room
        if not count:
            return 0
        self.stats["planned"] += len(jobs)
        for job in jobs:
            self.dispatch.submit(job)
        return count

    async def _plan(self, now: datetime, room: int) -> tuple[int, list[Job]]:
        """Claim; read, plan and render (in the render process for a big batch); record."""
        lease = self.settings.worker.lease_s
        rows = await self._store(self.store.claim_rows, self.worker_id, now, room, lease)
        if not rows:
            return 0, []
        if self.renderer is not None and self.renderer_ready and len(rows) >= RENDER_BATCH_MIN:
            # Only the claim and the record are written here; the reads, the planning and the
            # rendering run on the other core.
            planned = await asyncio.wrap_future(self.renderer.plan(rows, now,
                                                                   self.catalog().digest))
            self.stats["render_process_batches"] += 1
        else:
            # Reads and renders only: in a thread, never on the event loop (a slow template
            # must not stop HTTP and the other campaigns; the sandbox bounds each render).
            planned = await self._db(self.planner.plan_claimed, rows, now)
        return len(rows), await self._store(self.planner.record, planned, now)

    async def _warm_up(self, renderer: RenderProcess) -> None:
        try:
            await asyncio.wrap_future(renderer.warm_up())
        except Exception as exc:  # noqa: BLE001 - rendering then stays in this process
            log.error("action=render_process_failed error=%r", str(exc))
            return
        self.renderer_ready = renderer is self.renderer
        log.info("action=render_process_ready")

    async def _fence(self) -> bool:
        if not self.mailboxes:
            return True
        timeout = 10.0
        results = await asyncio.gather(*(asyncio.to_thread(mb.fence, timeout)
                                          for mb in self.mailboxes))
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
        poll = 1.0
        # Only a drain from here on wakes the loop: one that happened before this pass claimed
        # nothing would wake it again at once, a busy loop while mail waits on the server.
        self.dispatch.drained.clear()
        try:
            nxt = await self._db(self.store.next_due_at)
        except StoreError:
            nxt = None
        delay = poll
        if nxt is not None:
            delay = min(poll, max((nxt - self.clock.now()).total_seconds(), 0.0))
        if delay <= 0 and self.dispatch.inflight == 0:
            delay = 0.05  # due work that could not be claimed yet (a lease still running)
        waiters = [asyncio.create_task(self.wake_event.wait()),
                   asyncio.create_task(self.stop_event.wait())]
        if self.dispatch.inflight:
            waiters.append(asyncio.create_task(self.dispatch.drained.wait()))
        _, pending = await asyncio.wait(waiters, timeout=delay,
                                           return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        self.wake_event.clear()

    async def _store(self, fn: Callable[..., R], *args: Any) -> R:
        """Writes of the sending path: on SQLite in the loop itself, like the ledger (one
        writer, no waiting on another thread's write lock); on PostgreSQL in a thread."""
        if self.ledger.inline:
            return fn(*args)
        return await self._db(fn, *args)

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.plan_pool, fn, *args)

    # --- shutdown -------------------------------------------------------------------------------

    def _on_signal(self, name: str) -> None:
        log.info("action=signal signal=%s detail=%r", name, "stopping: no new work, "
                 f"finishing mails in flight (grace {self.settings.worker.grace_s}s)")
        self.stop_event.set()

    async def _shutdown(self) -> None:
        self.stop_event.set()
        self.side.thread_stop.set()
        dropped = await self.dispatch.shutdown(self.settings.worker.grace_s)
        try:
            released = await self._db(self.store.release_claims, self.worker_id, None)
            await self._db(self.stop_worker)
        except StoreError as exc:
            released = 0
            log.error("action=release_failed error=%r", str(exc))
        await self.side.stop()
        await self.ledger.close()
        await self.sender.close()
        if self.renderer is not None:
            self.renderer.close()
        self.reset_doors()
        self.plan_pool.shutdown(wait=False)
        self.ledger_pool.shutdown(wait=False)
        log.info("action=claims_released count=%d unsent_queued=%d", released, dropped)
