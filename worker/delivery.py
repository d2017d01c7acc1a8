"""Delivery: the channels (one SMTP connection each) and the ledger's group commit.

Each channel sends one mail at a time. Before a channel hands over a mail, the answer to its
previous mail and the "handed over" mark of the next one are made durable in one group commit
shared with every other channel (``Ledger``), so a kill at any instant repeats at most one
mail per open connection, with the same Message-ID.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from worker.adapters.db.rows import Outcome
from worker.config import Settings
from worker.errors import PermanentDeliveryError, TransientDeliveryError
from worker.ports import Gate
from worker.sending import Job

if TYPE_CHECKING:
    from worker.app import App

log = logging.getLogger(__name__)
R = TypeVar("R")
GATHER_S = 0.001       # how long a ledger commit waits for more connections to join it
GATHER_UP_TO = 6
THROTTLE_FIRST_S = 2.0  # the first pause of a throttled mailbox
THROTTLE_MAX_S = 60.0
THROTTLE_QUIET_S = 60.0  # throttling that ended this long ago starts over at the first pause


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
        # Message-IDs queued or with a channel, until their answer (or their withdrawal) is
        # recorded: the runner does not queue a second copy of one meanwhile.
        self.sending: set[str] = set()

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
            # Settled: a later plan of these steps (a retry after a deferral) may be queued.
            self.sending.difference_update(o.message_id for o in outcomes)
            self.sending.difference_update(h for h in hand_over if h not in allowed)
            for _, handed, future in batch:
                if not future.done():
                    future.set_result(allowed & set(handed))


class Delivery:
    """The channels of a worker, mixed into ``Runner`` (which owns the state below)."""

    app: App
    settings: Settings
    ledger: Ledger
    stop_event: asyncio.Event
    drained: asyncio.Event
    queues: dict[str, asyncio.Queue[Job]]
    channel_tasks: list[asyncio.Task[None]]
    busy: set[asyncio.Task[Any]]
    inflight: int
    stats: Counter[str]
    timings: defaultdict[str, float]
    throttled_until: dict[str, Pause]
    last_send_ok_at: datetime | None
    smtp_failing_since: datetime | None
    last_send_error: str | None

    async def _db(self, fn: Callable[..., R], *args: Any) -> R:
        raise NotImplementedError

    def _queue(self, mailbox: str) -> asyncio.Queue[Job]:
        if mailbox not in self.queues:
            queue: asyncio.Queue[Job] = asyncio.Queue()
            self.queues[mailbox] = queue
            for _ in range(self.app.sender.channels_for(mailbox)):
                self.channel_tasks.append(asyncio.create_task(self._channel(mailbox, queue),
                                                              name=f"channel-{mailbox}"))
        return self.queues[mailbox]


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
                sent = await self._send(channel, job, Gate(decision, job.envelope.message_id),
                                        time.monotonic())
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

    async def _send(self, channel: Any, job: Job, gate: Gate, at: float) -> Outcome | None:
        planner = self.app.planner
        held = self.app.bounce_guard.held(job.envelope.mailbox)  # issue 15: paused/signed out
        if held is not None:  # the mail waits (deferred), never dropped
            self.stats["deferred"] += 1
            return planner.deferred(job, None, held, self.app.clock.now(), True)
        started = time.perf_counter()
        try:
            result = await channel.send(job.envelope, gate)
            self.timings["smtp_s"] += time.perf_counter() - started
            if result is None:
                return None  # withdrawn: its enrolment lost the claim (a reply, a pause)
        except TransientDeliveryError as exc:
            self.stats["deferred"] += 1
            self.last_send_error = f"{exc.code or ''} {exc.message}".strip()[:300]
            self._failing()
            self.app.metrics.deferred(job.envelope.mailbox, "throttled" if exc.throttled
                                      else "transient")
            if exc.throttled:
                self._slow_down(job.envelope.mailbox, at)
            log.info("action=send_deferred campaign=%s step=%s code=%s throttled=%s error=%r",
                     job.campaign, job.step_id, exc.code, exc.throttled, exc.message[:200])
            return planner.deferred(job, exc.code, exc.message, self.app.clock.now(), exc.throttled)
        except PermanentDeliveryError as exc:
            outcome = planner.refused(job, exc.code, exc.message)
            self.stats[outcome.state] += 1
            if outcome.state == "failed":  # a refused address says nothing of the server
                self.last_send_error = f"{exc.code or ''} {exc.message}".strip()[:300]
                self._failing()
            self.app.metrics.failed(job.envelope.mailbox, outcome.state)
            log.warning("action=send_%s campaign=%s step=%s code=%s error=%r", outcome.state,
                        job.campaign, job.step_id, exc.code, exc.message[:200])
            if outcome.state == "bounced":
                await self._db(self.app.after_smtp_bounce, job.lead_id, exc.code, exc.message)
                await self._db(self.app.bounce_guard.after_bounce, job.envelope.mailbox)
            return outcome
        self.stats["accepted"] += 1
        self.last_send_ok_at = self.app.clock.now()
        self.last_send_error = None
        self.smtp_failing_since = None
        pause = self.throttled_until.get(job.envelope.mailbox)
        if pause is not None and not pause.recovered:
            self.throttled_until[job.envelope.mailbox] = dataclasses.replace(pause, recovered=True)
        self.app.metrics.sent(job, self.last_send_ok_at)
        log.debug("action=send_ok campaign=%s step=%s message_id=%s", job.campaign, job.step_id,
                  job.envelope.message_id)
        return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, "accepted",
                       result.code, result.message, job.success)

    def _failing(self) -> None:
        if self.smtp_failing_since is None:
            self.smtp_failing_since = self.app.clock.now()

    def _done(self, job: Job) -> None:
        self.inflight -= 1
        if self.inflight <= self.settings.worker.batch_size:
            self.drained.set()

    def _slow_down(self, mailbox: str, send_started: float) -> None:
        pause = throttle_after(self.throttled_until.get(mailbox), time.monotonic(), send_started)
        if pause is None:
            self.stats["throttle_same_episode"] += 1
            return
        self.throttled_until[mailbox] = pause
        log.warning("action=mailbox_throttled mailbox=%s pause_s=%.1f", mailbox,
                    pause.until - pause.since)

    async def _throttle_pause(self, mailbox: str) -> None:
        pause = self.throttled_until.get(mailbox)
        wait = pause.until - time.monotonic() if pause is not None else 0.0
        if wait > 0:
            await asyncio.sleep(min(wait, THROTTLE_MAX_S))


@dataclasses.dataclass(frozen=True)
class Pause:
    """A mailbox's throttling pause, in ``time.monotonic()`` seconds."""

    since: float
    until: float
    recovered: bool = False  # a mail was accepted since: the next throttling starts over


def throttle_after(current: Pause | None, now: float, send_started: float) -> Pause | None:
    """The pause after a throttling answer to a send that started at ``send_started``.

    None when the answer belongs to an episode already counted: a pause that began after this
    send started was set by an answer to a send made at the same time (ten channels throttled
    at once raise the pause once, not ten times). Otherwise the first pause is 2 s, and each
    later episode doubles the last pause (up to 60 s), back to 2 s once a mail was accepted
    in between or after a quiet minute."""
    if current is not None and current.since >= send_started:
        return None
    if current is None or current.recovered or current.until < now - THROTTLE_QUIET_S:
        length = THROTTLE_FIRST_S
    else:
        length = min((current.until - current.since) * 2, THROTTLE_MAX_S)
    return Pause(now, now + length)
