"""The worker loop: claim due work, plan it, hand it to the channels; side tasks; shutdown.

Each channel (one SMTP connection) sends one mail at a time. Before a channel hands over a
mail, the answer to its previous mail and the "handed over" mark of the next one are made
durable in one group commit shared with every other channel (``Ledger``), so a kill at any
instant repeats at most one mail per open connection, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from worker.adapters.db.ledger import Outcome
from worker.errors import PermanentDeliveryError, StoreError, TransientDeliveryError
from worker.ports import Gate
from worker.sending import Job
from worker.signals import EARLY_STOP

if TYPE_CHECKING:
    from worker.app import App
    from worker.rendering import RenderProcess

log = logging.getLogger(__name__)
R = TypeVar("R")
RENDER_BATCH_MIN = 16  # smaller batches (a lone speed-to-lead mail) render here
GATHER_S = 0.001       # how long a ledger commit waits for more connections to join it
GATHER_UP_TO = 6



class Ledger:
    """Group commit of the per-mail ledger for every channel of this worker."""

    def __init__(self, app: App, executor: ThreadPoolExecutor) -> None:
        self.app = app
        self.executor = executor
        self.pending: list[tuple[list[Outcome], list[str], asyncio.Future[set[str]]]] = []
        self.wake = asyncio.Event()
        self.inline = app.db.is_sqlite
        self.commits = 0
        self.commit_s = 0.0
        self.durations: deque[float] = deque(maxlen=4096)  # recent commit times
        self.committed = 0

    async def commit(self, outcomes: list[Outcome], hand_over: list[str]) -> set[str]:
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        self.pending.append((outcomes, hand_over, future))
        self.wake.set()
        return await future

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            if len(self.pending) < GATHER_UP_TO:
                # Let the other connections' answers join this commit: fewer, larger commits.
                # The wait is hidden: each connection prepares its next transaction meanwhile.
                await asyncio.sleep(GATHER_S)
            batch, self.pending = self.pending, []
            if not batch:
                continue
            outcomes = [o for b in batch for o in b[0]]
            hand_over = [h for b in batch for h in b[1]]
            started = time.perf_counter()
            try:
                if self.inline:
                    # SQLite answers in well under a millisecond: waiting for a thread to get
                    # the interpreter lock back from a busy event loop costs more.
                    allowed = self.app.db.record(self.app.worker_id, outcomes, hand_over)
                else:
                    allowed = await loop.run_in_executor(
                        self.executor, self.app.db.record, self.app.worker_id, outcomes, hand_over)
                self.commits += 1
                self.committed += len(outcomes)
                self.commit_s += time.perf_counter() - started
                self.durations.append(time.perf_counter() - started)
            except Exception as exc:  # noqa: BLE001 - every waiter must learn of the failure
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for _, handed, future in batch:
                if not future.done():
                    future.set_result(allowed & set(handed))


class Runner:
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
        self.throttled_until: dict[str, float] = {}
        self.started_at = time.monotonic()
        self.last_send_ok_at: datetime | None = None
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
                     "campaigns=%d", app.worker_id, self.once, self.settings.outbound.transport,
                     self.settings.inbound.transport, len(app.catalog.campaigns))
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
            ready = self.inflight <= batch
            if ready:
                claimed = await self._pass(batch)
            if self.once:
                await self._send_notifications()
                if claimed == 0:
                    await self._wait_drained()
                    if await self._db(self._due_now) == 0:
                        break
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
            self._queue(job.envelope.mailbox).put_nowait(job)
            self.inflight += 1
        if jobs:
            self.drained.clear()
        return count

    async def _plan(self, now: datetime, room: int) -> tuple[int, list[Job]]:
        """Claim, plan, render (in the render process for a big batch), record the plan."""
        app, lease = self.app, self.settings.worker.lease_s
        claimed = await self._store(app.db.claim_due, app.worker_id, now, room, lease)
        if not claimed:
            return 0, []
        staged = await self._store(app.planner.stage, claimed, now)
        requests = staged.requests
        if self.renderer is not None and self.renderer_ready and \
                len(requests) >= RENDER_BATCH_MIN:
            results = await asyncio.wrap_future(self.renderer.render(requests,
                                                                     app.catalog.digest))
        else:
            results = app.planner.render(requests)
        return len(claimed), await self._store(app.planner.record_plan, staged, results, now)

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

    def _queue(self, mailbox: str) -> asyncio.Queue[Job]:
        if mailbox not in self.queues:
            queue: asyncio.Queue[Job] = asyncio.Queue()
            self.queues[mailbox] = queue
            for _ in range(self.app.sender.channels_for(mailbox)):
                self.channel_tasks.append(asyncio.create_task(self._channel(mailbox, queue),
                                                              name=f"channel-{mailbox}"))
        return self.queues[mailbox]

    # --- channels -----------------------------------------------------------------------------

    async def _channel(self, mailbox: str, queue: asyncio.Queue[Job]) -> None:
        """One connection: record the previous answer and mark the next mail handed over in
        one commit, while the next transaction is prepared; hand it over once committed."""
        channel = await self.app.sender.open_channel(mailbox)
        me = asyncio.current_task()
        assert me is not None
        outcome: Outcome | None = None
        finished: Job | None = None
        try:
            while True:
                job: Job | None = None
                if outcome is None:
                    if self.stop_event.is_set():
                        return
                    self.busy.discard(me)
                    job = await queue.get()
                    self.busy.add(me)
                elif not queue.empty() and not self.stop_event.is_set():
                    job = queue.get_nowait()
                prior = [outcome] if outcome else []
                if job is None:
                    await self._commit(prior, [])
                    if finished is not None:
                        self._done(finished)
                    outcome = finished = None
                    continue
                decision = asyncio.ensure_future(self._commit(prior, [job.envelope.message_id]))
                await self._throttle_pause(mailbox)
                sent = await self._send(channel, job, Gate(decision, job.envelope.message_id))
                await decision  # the previous answer is durable
                if finished is not None:
                    self._done(finished)
                outcome, finished = sent, job
                if sent is None:
                    self.stats["withdrawn"] += 1
                    self._done(job)
                    outcome = finished = None
        finally:
            if outcome is not None:
                try:
                    await self._commit([outcome], [])
                finally:
                    if finished is not None:
                        self._done(finished)
            self.busy.discard(me)
            await channel.close()

    async def _commit(self, outcomes: list[Outcome], hand_over: list[str]) -> set[str]:
        """Make the record durable; a database outage blocks this channel, never drops."""
        delay = 0.5
        while True:
            try:
                return await self.ledger.commit(outcomes, hand_over)
            except Exception as exc:  # noqa: BLE001 - keep the answer until it is recorded
                log.error("action=ledger_failed error=%r retry_in_s=%.1f", str(exc), delay)
                if self.stop_event.is_set() and not outcomes:
                    return set()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _send(self, channel: Any, job: Job, gate: Gate) -> Outcome | None:
        planner = self.app.planner
        started = time.perf_counter()
        try:
            result = await channel.send(job.envelope, gate)
            self.timings["smtp_s"] += time.perf_counter() - started
            if result is None:
                return None  # withdrawn: its enrolment lost the claim (a reply, a pause)
        except TransientDeliveryError as exc:
            self.stats["deferred"] += 1
            self.last_send_error = f"{exc.code or ''} {exc.message}".strip()[:300]
            self.app.metrics.deferred(job.envelope.mailbox, "throttled" if exc.throttled
                                      else "transient")
            if exc.throttled:
                self._slow_down(job.envelope.mailbox)
            log.info("action=send_deferred campaign=%s step=%s code=%s throttled=%s error=%r",
                     job.campaign, job.step_id, exc.code, exc.throttled, exc.message[:200])
            return planner.deferred(job, exc.code, exc.message, self.app.clock.now(), exc.throttled)
        except PermanentDeliveryError as exc:
            outcome = planner.refused(job, exc.code, exc.message)
            self.stats[outcome.state] += 1
            self.app.metrics.failed(job.envelope.mailbox, outcome.state)
            log.warning("action=send_%s campaign=%s step=%s code=%s error=%r", outcome.state,
                        job.campaign, job.step_id, exc.code, exc.message[:200])
            if outcome.state == "bounced":
                await self._db(self.app.after_smtp_bounce, job.lead_id, exc.code, exc.message)
            return outcome
        self.stats["accepted"] += 1
        self.last_send_ok_at = self.app.clock.now()
        self.last_send_error = None
        self.app.metrics.sent(job, self.last_send_ok_at)
        log.debug("action=send_ok campaign=%s step=%s message_id=%s", job.campaign, job.step_id,
                  job.envelope.message_id)
        return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, "accepted",
                       result.code, result.message, job.success)

    def _done(self, job: Job) -> None:
        self.inflight -= 1
        if self.inflight <= self.settings.worker.batch_size:
            self.drained.set()

    def _slow_down(self, mailbox: str) -> None:
        now = time.monotonic()
        current = self.throttled_until.get(mailbox, 0.0)
        pause = 2.0 if current < now - 60 else min(max(current - now, 1.0) * 2, 60.0)
        self.throttled_until[mailbox] = now + pause
        log.warning("action=mailbox_throttled mailbox=%s pause_s=%.1f", mailbox, pause)

    async def _throttle_pause(self, mailbox: str) -> None:
        wait = self.throttled_until.get(mailbox, 0.0) - time.monotonic()
        if wait > 0:
            await asyncio.sleep(min(wait, 60.0))

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


