"""The webhook delivery loop: claims due outbox events, posts them, applies the schedule.

It owns the two narrow interfaces it needs (an outbox and a poster) and is handed everything
in its constructor, so the worker can run it as one more supervised side task and tests can
drive it batch by batch (``deliver_due``) without waiting.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Protocol

from worker.config_webhooks import WebhookEndpointSettings
from worker.domain.webhook_retry import Attempt, OutboxEvent, next_attempt_at
from worker.errors import StoreError
from worker.ports import Clock

log = logging.getLogger(__name__)


class WebhookOutbox(Protocol):
    """What the loop needs from the outbox table."""

    def claim_due(self, worker_id: str, limit: int, lease_s: float,
                  endpoints: Collection[str] | None = None) -> list[OutboxEvent]: ...

    def mark_delivered(self, webhook_id: str, at: datetime) -> None: ...

    def mark_retry(self, webhook_id: str, at: datetime, next_at: datetime,
                   error: str) -> None: ...

    def mark_failed(self, webhook_id: str, at: datetime, error: str) -> None: ...


class WebhookPosterPort(Protocol):
    """What the loop needs from the HTTP side: post one signed event, say what came of it."""

    async def post(self, *, endpoint: str, url: str, secret: str, webhook_id: str, body: str,
                   timeout_s: float) -> Attempt: ...


class WebhookDelivery:
    """Delivers the outbox.

    - ``outbox``: claims and marks rows (``WebhookStore``); called in a thread, it blocks.
    - ``poster``: posts one event (``WebhookPoster``).
    - ``endpoints``: the enabled endpoints by name (URL, secret, ``timeout_s``).
    - ``clock``: now; ``max_age_h``: how long an event is retried before it is failed.
    - ``worker_id``: names this worker's claims; ``batch_size`` events per claim.
    - ``poll_interval_s``: how often to look for due events when idle (``wake`` cuts it short).
    - ``jitter``: a number in [0, 1] per retry (random by default; tests pass a constant).
    - ``observe``: called with (endpoint, outcome) after each attempt, the outcome being
      delivered, retry or failed (given up) (metrics).
    """

    def __init__(self, outbox: WebhookOutbox, poster: WebhookPosterPort,
                 endpoints: Mapping[str, WebhookEndpointSettings], clock: Clock, *,
                 max_age_h: float = 72.0, worker_id: str = "webhooks", batch_size: int = 50,
                 poll_interval_s: float = 1.0, jitter: Callable[[], float] = random.random,
                 observe: Callable[[str, str], None] | None = None) -> None:
        self.outbox = outbox
        self.poster = poster
        self.endpoints = dict(endpoints)
        self.clock = clock
        self.max_age_h = max_age_h
        self.worker_id = worker_id
        self.batch_size = batch_size
        self.poll_interval_s = poll_interval_s
        self.jitter = jitter
        self.observe = observe
        # A claim outlives the slowest post by a margin, so a live worker never loses its
        # rows to another one; a dead worker's rows come back when it ends.
        slowest = max((ep.timeout_s for ep in self.endpoints.values()), default=10.0)
        self.lease_s = 2 * slowest + 30.0
        self._wake = asyncio.Event()

    def wake(self) -> None:
        """Look for due events now (an event was just enqueued in this process)."""
        self._wake.set()

    async def deliver_due(self) -> int:
        """Claim one batch of due events, post them concurrently, record each outcome.
        Returns how many were attempted."""
        if not self.endpoints:
            return 0
        batch = await asyncio.to_thread(self.outbox.claim_due, self.worker_id, self.batch_size,
                                        self.lease_s, list(self.endpoints))
        # A claim holds at most one event per lead and endpoint (the oldest pending), so
        # posting the batch concurrently keeps each lead's order.
        await asyncio.gather(*(self._deliver(event) for event in batch))
        return len(batch)

    async def _deliver(self, event: OutboxEvent) -> None:
        ep = self.endpoints[event.endpoint]
        attempt = await self.poster.post(endpoint=event.endpoint, url=ep.url,
                                         secret=ep.secret.reveal(), webhook_id=event.webhook_id,
                                         body=event.body, timeout_s=ep.timeout_s)
        now = self.clock.now()
        if attempt.delivered:
            await asyncio.to_thread(self.outbox.mark_delivered, event.webhook_id, now)
            self._observe(event.endpoint, "delivered")
            return
        next_at = next_attempt_at(event.attempts + 1, event.queued_at, now, self.max_age_h,
                                  self.jitter())
        self._observe(event.endpoint, "retry" if next_at else "failed")
        if next_at is None:
            # Reported, not dropped: the log line, the metric, `nurture webhooks list` and
            # /healthz all say so, and `nurture webhooks replay NAME --failed` sends it again.
            log.warning("action=webhook_given_up endpoint=%s webhook_id=%s type=%s attempts=%d "
                        "error=%s", event.endpoint, event.webhook_id, event.type,
                        event.attempts + 1, attempt.error)
            await asyncio.to_thread(self.outbox.mark_failed, event.webhook_id, now, attempt.error)
        else:
            await asyncio.to_thread(self.outbox.mark_retry, event.webhook_id, now, next_at,
                                    attempt.error)

    def _observe(self, endpoint: str, outcome: str) -> None:
        if self.observe is not None:
            self.observe(endpoint, outcome)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set. A database outage is logged and waited out; any
        other error propagates, so the worker's supervisor stops with its reason."""
        while not stop.is_set():
            self._wake.clear()  # before the claim: a wake during it means "look again"
            try:
                n = await self.deliver_due()
            except StoreError as exc:
                log.warning("action=webhook_outbox_unavailable error=%s", exc)
                n = 0
            if n >= self.batch_size:
                continue
            waits = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
            try:
                await asyncio.wait(waits, timeout=self.poll_interval_s,
                                   return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
