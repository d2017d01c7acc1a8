"""The webhook outbox: events written with the change they report, claimed and marked by the
delivery loop.

Claiming follows procrastinate's shape: one ``UPDATE ... RETURNING`` over a candidate set
taken ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so several workers never take the same row.
SQLite has no row locks (SQLAlchemy drops ``skip_locked`` there): one worker per SQLite
database, which the worker's file lock already enforces. A claim is a lease: a worker killed
mid-post leaves its rows to be claimed again when the lease ends (same ``webhook-id``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, exists, func, insert, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, aliased

from worker.adapters.db import models as m
from worker.domain.model import Lead
from worker.domain.webhook_retry import EndpointStats, OutboxEvent
from worker.domain.webhooks import WebhookEvent, endpoints_for
from worker.errors import StoreError
from worker.ports import Clock, SystemClock

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
W = m.WebhookOutbox
#: Errors are cut so that a receiver answering a page of HTML does not bloat the table.
ERROR_MAX = 500


def new_webhook_id() -> str:
    """A fresh ``webhook-id`` (``msg_`` + 32 hex digits)."""
    return f"msg_{uuid.uuid4().hex}"


def emit(conn: Session | Connection, outbox: WebhookStore | None,
         build: Callable[[], Iterable[WebhookEvent]]) -> int:
    """Enqueue events from inside a room's session, so they commit or roll back with the
    change they report. ``build`` is called only when some endpoint is enabled: with no
    endpoint configured nothing is read, built or written."""
    if outbox is None or not outbox.filters:
        return 0
    return outbox.enqueue(conn, build())


_LEAD_COLS = ("id", "email", "first_name", "last_name", "company", "title", "phone",
              "timezone", "country", "owner")


def leads_in(conn: Session | Connection, ids: Iterable[int]) -> dict[int, Lead]:
    """The leads an event is about, read inside the caller's transaction (one query)."""
    wanted = sorted({i for i in ids if i is not None})
    if not wanted:
        return {}
    cols = [getattr(m.Lead, c) for c in _LEAD_COLS]
    rows = conn.execute(select(*cols).where(m.Lead.id.in_(wanted))).all()
    return {r.id: Lead(**{c: getattr(r, c) for c in _LEAD_COLS}) for r in rows}


class WebhookStore:
    """The outbox table. ``filters`` maps each enabled endpoint to its event filter (None:
    every type); it decides, at enqueue time, which endpoints get a row."""

    def __init__(self, engine: Engine, filters: Mapping[str, frozenset[str] | None],
                 clock: Clock | None = None) -> None:
        self.engine = engine
        self.filters = dict(filters)
        self.clock = clock or SystemClock()

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreError(f"database error in the webhook outbox: {exc}") from exc

    # --- writing -----------------------------------------------------------------------------

    def rows_for(self, events: Iterable[WebhookEvent], now: datetime,
                 only: str | None = None) -> list[dict[str, Any]]:
        """One outbox row per event and endpoint that wants it (or for ``only``, whatever
        its filter: a ``ping`` or a test addressed to one endpoint)."""
        rows = []
        for event in events:
            body = event.body_json()
            targets = [only] if only else endpoints_for(self.filters, event.type)
            for endpoint in targets:
                rows.append({"webhook_id": new_webhook_id(), "endpoint": endpoint,
                             "lead_id": event.lead_id, "type": event.type.value, "body": body,
                             "status": PENDING, "attempts": 0, "created_at": now,
                             "queued_at": now, "next_attempt_at": now})
        return rows

    def enqueue(self, conn: Session | Connection, events: Iterable[WebhookEvent],
                only: str | None = None) -> int:
        """Write the events inside the caller's transaction (so they commit, or roll back,
        with the change they report). Returns the number of rows written."""
        rows = self.rows_for(events, self.clock.now(), only)
        if rows:
            conn.execute(insert(W), rows)
        return len(rows)

    def enqueue_now(self, events: Iterable[WebhookEvent], only: str | None = None) -> int:
        """Write the events in a transaction of their own (a ``ping`` to ``only``)."""
        with self._begin() as conn:
            return self.enqueue(conn, events, only)

    # --- claiming ----------------------------------------------------------------------------

    def claim_due(self, worker_id: str, limit: int, lease_s: float,
                  endpoints: Collection[str] | None = None) -> list[OutboxEvent]:
        """Take up to ``limit`` due events for ``lease_s`` seconds, oldest first, never an
        event of a lead while an older one of that lead for that endpoint is pending."""
        now = self.clock.now()
        older = aliased(W)
        blocked = exists().where(older.endpoint == W.endpoint, older.lead_id == W.lead_id,
                                 older.status == PENDING, older.seq < W.seq)
        cand = (select(W.seq)
                .where(W.status == PENDING, W.next_attempt_at <= now,
                       or_(W.claimed_until.is_(None), W.claimed_until < now), ~blocked)
                .order_by(W.next_attempt_at, W.seq).limit(limit))
        if endpoints is not None:
            cand = cand.where(W.endpoint.in_(list(endpoints)))
        if self.engine.dialect.name == "postgresql":
            cand = cand.with_for_update(skip_locked=True, of=W)
        picked = cand.cte("picked")
        stmt = (update(W).where(W.seq == picked.c.seq)
                .values(claimed_by=worker_id, claimed_until=now + timedelta(seconds=lease_s))
                .returning(W.seq, W.webhook_id, W.endpoint, W.lead_id, W.type, W.body,
                           W.attempts, W.queued_at))
        with self._begin() as conn:
            rows = conn.execute(stmt).all()
        return sorted((OutboxEvent(seq=r.seq, webhook_id=r.webhook_id, endpoint=r.endpoint,
                                   lead_id=r.lead_id, type=r.type, body=r.body,
                                   attempts=r.attempts, queued_at=r.queued_at) for r in rows),
                      key=lambda e: e.seq)

    # --- marking -----------------------------------------------------------------------------

    def _mark(self, webhook_id: str, **values: Any) -> None:
        with self._begin() as conn:
            conn.execute(update(W).where(W.webhook_id == webhook_id, W.status == PENDING)
                         .values(claimed_by=None, claimed_until=None, **values))

    def mark_delivered(self, webhook_id: str, at: datetime) -> None:
        """The receiver answered 2xx."""
        self._mark(webhook_id, status=DELIVERED, delivered_at=at, last_attempt_at=at,
                   attempts=W.attempts + 1)

    def mark_retry(self, webhook_id: str, at: datetime, next_at: datetime, error: str) -> None:
        """The attempt failed; try again at ``next_at``."""
        self._mark(webhook_id, next_attempt_at=next_at, last_attempt_at=at,
                   last_error=error[:ERROR_MAX], attempts=W.attempts + 1)

    def mark_failed(self, webhook_id: str, at: datetime, error: str) -> None:
        """The attempt failed and the event is older than ``max_age_h``: give up, keep it
        for `nurture webhooks replay`."""
        self._mark(webhook_id, status=FAILED, last_attempt_at=at, last_error=error[:ERROR_MAX],
                   attempts=W.attempts + 1)

    # --- operations --------------------------------------------------------------------------

    def stats(self) -> dict[str, EndpointStats]:
        """Per endpoint (configured or still holding rows): counts, last error and when."""
        with self._begin() as conn:
            counts = conn.execute(select(W.endpoint, W.status, func.count())
                                  .group_by(W.endpoint, W.status)).all()
            times = {r.endpoint: r for r in conn.execute(
                select(W.endpoint, func.max(W.delivered_at).label("delivered"),
                       func.min(W.created_at).filter(W.status == PENDING).label("oldest"))
                .group_by(W.endpoint))}
            names = sorted(set(self.filters) | {r.endpoint for r in counts})
            out: dict[str, EndpointStats] = {}
            for name in names:
                last = conn.execute(select(W.last_error, W.last_attempt_at)
                                    .where(W.endpoint == name, W.last_error.is_not(None))
                                    .order_by(W.last_attempt_at.desc()).limit(1)).first()
                n = {r.status: r[2] for r in counts if r.endpoint == name}
                t = times.get(name)
                out[name] = EndpointStats(
                    endpoint=name, pending=n.get(PENDING, 0), delivered=n.get(DELIVERED, 0),
                    failed=n.get(FAILED, 0), last_error=last.last_error if last else None,
                    last_error_at=last.last_attempt_at if last else None,
                    last_delivered_at=t.delivered if t else None,
                    oldest_pending_at=t.oldest if t else None)
        return out

    def replay(self, endpoint: str, since: datetime | None = None,
               failed_only: bool = False) -> int:
        """Queue an endpoint's delivered and failed events again (same ``webhook-id``), from
        ``since`` on, or only the failed ones; their ``max_age_h`` starts anew."""
        now = self.clock.now()
        cond = [W.endpoint == endpoint,
                W.status == FAILED if failed_only else W.status.in_((FAILED, DELIVERED))]
        if since is not None:
            cond.append(W.created_at >= since)
        with self._begin() as conn:
            result = conn.execute(update(W).where(and_(*cond)).values(
                status=PENDING, attempts=0, queued_at=now, next_attempt_at=now,
                delivered_at=None, claimed_by=None, claimed_until=None))
        return int(result.rowcount)

    def pending_count(self) -> int:
        """Events not yet delivered nor given up, all endpoints."""
        with self._begin() as conn:
            return int(conn.execute(select(func.count()).select_from(W)
                                    .where(W.status == PENDING)).scalar_one())
