"""Dispatch: the channels (one SMTP connection each), their queues, throttling and the count
of mails in flight. The ``Runner`` owns one ``Dispatcher`` and hands it planned jobs; the
dispatcher alone changes ``inflight``, ``drained`` and ``queues``.

Each channel sends one mail at a time; the answer to its previous mail and the "handed over"
mark of the next one are made durable together through the ``Ledger``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Protocol, TypeVar

from worker.domain.send_rows import Outcome
from worker.engine.ledger import Ledger
from worker.engine.planning import Job
from worker.errors import PermanentDeliveryError, TransientDeliveryError
from worker.ports import Clock, Gate, Sender

log = logging.getLogger(__name__)
R = TypeVar("R")
THROTTLE_FIRST_S = 2.0  # the first pause of a throttled mailbox
THROTTLE_MAX_S = 60.0
THROTTLE_QUIET_S = 60.0  # throttling that ended this long ago starts over at the first pause


class OutcomePlanner(Protocol):
    """What a refusal or a deferral becomes in the schedule (``Planner``)."""

    def deferred(self, job: Job, code: int | None, message: str, now: datetime,
                 throttled: bool) -> Outcome: ...
    def refused(self, job: Job, code: int | None, message: str) -> Outcome: ...


class SendMetrics(Protocol):
    """The counters a send moves."""

    def sent(self, job: Job, at: datetime) -> None: ...
    def deferred(self, mailbox: str, kind: str) -> None: ...
    def failed(self, mailbox: str, state: str) -> None: ...


class MailboxGuard(Protocol):
    """Which mailboxes must hold their mail (paused for bounces, signed out)."""

    def held(self, mailbox: str) -> str | None: ...
    def after_bounce(self, mailbox: str) -> bool: ...


class Dispatcher:
    """The channels of a worker and the state they share.

    Args:
        sender: opens one channel (connection) per slot of a mailbox.
        ledger: the group commit every channel records through.
        planner: turns refusals and deferrals into outcomes.
        metrics: the send counters.
        clock: the time of an answer.
        on_bounce: ``(lead_id, code, text)``, run in a thread after an SMTP-time bounce.
        run_db: runs a blocking call off the event loop.
        stop_event: the worker is stopping: channels finish the mail in hand and return.
        batch_size: ``drained`` is set once no more than this many mails are in flight.
        guard: holds the mail of a paused or signed-out mailbox; judges hard bounces.
    """

    def __init__(self, sender: Sender, ledger: Ledger, planner: OutcomePlanner,
                 metrics: SendMetrics, clock: Clock,
                 on_bounce: Callable[[int, int | None, str], None],
                 run_db: Callable[..., Awaitable[Any]], stop_event: asyncio.Event,
                 batch_size: int, guard: MailboxGuard) -> None:
        self.sender = sender
        self.ledger = ledger
        self.planner = planner
        self.metrics = metrics
        self.clock = clock
        self.on_bounce = on_bounce
        self.run_db = run_db
        self.stop_event = stop_event
        self.batch_size = batch_size
        self.guard = guard
        self.drained = asyncio.Event()
        self.queues: dict[str, asyncio.Queue[Job]] = {}
        self.channel_tasks: list[asyncio.Task[None]] = []
        self.busy: set[asyncio.Task[Any]] = set()
        self.inflight = 0
        self.stats: Counter[str] = Counter()
        self.timings: defaultdict[str, float] = defaultdict(float)
        self.throttled_until: dict[str, Pause] = {}
        self.last_send_ok_at: datetime | None = None
        self.smtp_failing_since: datetime | None = None  # no send accepted since then
        self.last_send_error: str | None = None

    def submit(self, job: Job) -> bool:
        """Queue one planned mail on its mailbox's channels; False if a copy is in flight."""
        if job.envelope.message_id in self.ledger.sending:
            # Planned again while its first copy is still with a channel (its claim was
            # dropped and taken again meanwhile): one copy is enough.
            self.stats["replanned_in_flight"] += 1
            log.warning("action=replanned_in_flight message_id=%s", job.envelope.message_id)
            return False
        self.ledger.sending.add(job.envelope.message_id)
        self._queue(job.envelope.mailbox).put_nowait(job)
        self.inflight += 1
        self.drained.clear()
        return True

    async def wait_drained(self) -> None:
        """Until every queued mail is answered (or the worker stops)."""
        while self.inflight and not self.stop_event.is_set():
            self.drained.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.drained.wait(), timeout=0.5)

    async def shutdown(self, grace_s: float) -> int:
        """Drop what is still queued, let busy channels finish within ``grace_s``; returns
        the number of mails dropped from the queues (their claims are released)."""
        dropped = 0
        for queue in self.queues.values():
            while not queue.empty():
                job = queue.get_nowait()
                dropped += 1
                self.ledger.sending.discard(job.envelope.message_id)
                self.inflight -= 1
        idle = [t for t in self.channel_tasks if not t.done() and t not in self.busy]
        for task in idle:
            task.cancel()  # blocked on an empty queue: nothing in flight
        busy = [t for t in self.channel_tasks if not t.done() and t not in idle]
        if busy:
            _, pending = await asyncio.wait(busy, timeout=grace_s)
            for task in pending:
                task.cancel()  # past the grace period: the mail stays handed over, resent later
        await asyncio.gather(*self.channel_tasks, return_exceptions=True)
        return dropped

    def _queue(self, mailbox: str) -> asyncio.Queue[Job]:
        if mailbox not in self.queues:
            queue: asyncio.Queue[Job] = asyncio.Queue()
            self.queues[mailbox] = queue
            for _ in range(self.sender.channels_for(mailbox)):
                self.channel_tasks.append(asyncio.create_task(self._channel(mailbox, queue),
                                                              name=f"channel-{mailbox}"))
        return self.queues[mailbox]


    async def _channel(self, mailbox: str, queue: asyncio.Queue[Job]) -> None:
        """One connection: record the previous answer and mark the next mail handed over in
        one commit, while the next transaction is prepared; hand it over once committed."""
        channel = await self.sender.open_channel(mailbox)
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
        planner = self.planner
        held = self.guard.held(job.envelope.mailbox)  # paused or signed out (issue 15)
        if held is not None:  # the mail waits (deferred), never dropped
            self.stats["deferred"] += 1
            return planner.deferred(job, None, held, self.clock.now(), True)
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
            self.metrics.deferred(job.envelope.mailbox, "throttled" if exc.throttled
                                      else "transient")
            if exc.throttled:
                self._slow_down(job.envelope.mailbox, at)
            log.info("action=send_deferred campaign=%s step=%s code=%s throttled=%s error=%r",
                     job.campaign, job.step_id, exc.code, exc.throttled, exc.message[:200])
            return planner.deferred(job, exc.code, exc.message, self.clock.now(), exc.throttled)
        except PermanentDeliveryError as exc:
            outcome = planner.refused(job, exc.code, exc.message)
            self.stats[outcome.state] += 1
            if outcome.state == "failed":  # a refused address says nothing of the server
                self.last_send_error = f"{exc.code or ''} {exc.message}".strip()[:300]
                self._failing()
            self.metrics.failed(job.envelope.mailbox, outcome.state)
            log.warning("action=send_%s campaign=%s step=%s code=%s error=%r", outcome.state,
                        job.campaign, job.step_id, exc.code, exc.message[:200])
            if outcome.state == "bounced":
                await self.run_db(self.on_bounce, job.lead_id, exc.code, exc.message)
                await self.run_db(self.guard.after_bounce, job.envelope.mailbox)
            return outcome
        self.stats["accepted"] += 1
        self.last_send_ok_at = self.clock.now()
        self.last_send_error = None
        self.smtp_failing_since = None
        pause = self.throttled_until.get(job.envelope.mailbox)
        if pause is not None and not pause.recovered:
            self.throttled_until[job.envelope.mailbox] = dataclasses.replace(pause, recovered=True)
        self.metrics.sent(job, self.last_send_ok_at)
        log.debug("action=send_ok campaign=%s step=%s message_id=%s", job.campaign, job.step_id,
                  job.envelope.message_id)
        return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, "accepted",
                       result.code, result.message, job.success)

    def _failing(self) -> None:
        if self.smtp_failing_since is None:
            self.smtp_failing_since = self.clock.now()

    def _done(self, job: Job) -> None:
        self.inflight -= 1
        if self.inflight <= self.batch_size:
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
