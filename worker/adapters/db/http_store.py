"""Idempotency keys for the HTTP API: a retried request gets the first answer again.

A key is reserved (status 0) before the work and finished with the answer after it, so two
copies of one request arriving together do the work once: the second sees the reservation.
A reservation left behind by a crash is taken over after ``STALE_S``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from worker.adapters.db import models as m
from worker.adapters.db.base import Room
from worker.errors import StoreError

IN_PROGRESS = 0
#: How long a finished answer is kept (a retry after that is a new request).
RETENTION = timedelta(hours=24)
#: A reservation older than this belongs to a request that died mid-way.
STALE_S = 300.0
_PRUNE_EVERY_S = 600.0


@dataclass(frozen=True)
class StoredAnswer:
    """What an earlier request with the same key got (status 0: still being worked on)."""

    status: int
    fingerprint: str
    body: dict[str, Any] | None


class HttpRows(Room):
    """The HTTP door's own records: idempotency keys and their stored answers."""
    _idempotency_pruned_at: float = 0.0

    def reserve_idempotency_key(self, key: str, fingerprint: str) -> StoredAnswer | None:
        """Reserve ``key`` for this request: None if reserved (do the work), else the
        earlier request's answer or reservation."""
        now = self.now()
        self._prune_idempotency_keys(now)
        for _ in range(3):
            try:
                with self.session() as s:
                    s.add(m.IdempotencyKey(key=key, status=IN_PROGRESS,
                                           response={"fingerprint": fingerprint}, created_at=now))
                return None
            except IntegrityError:
                pass
            with self.session() as s:
                row = s.get(m.IdempotencyKey, key)
                if row is None:
                    continue  # released or pruned meanwhile: reserve it again
                stored = StoredAnswer(row.status, str((row.response or {}).get("fingerprint", "")),
                                      (row.response or {}).get("body"))
                if row.status != IN_PROGRESS or row.created_at >= now - timedelta(seconds=STALE_S):
                    return stored
                taken = s.execute(update(m.IdempotencyKey).where(
                    m.IdempotencyKey.key == key, m.IdempotencyKey.status == IN_PROGRESS,
                    m.IdempotencyKey.created_at == row.created_at).values(
                    response={"fingerprint": fingerprint}, created_at=now))
                return None if taken.rowcount else stored  # type: ignore[attr-defined]
        raise StoreError(f"idempotency key {key[:40]!r} keeps changing hands")

    def finish_idempotency_key(self, key: str, fingerprint: str, status: int,
                               body: dict[str, Any]) -> None:
        """Keep the answer given to the request that reserved ``key``."""
        with self.session() as s:
            s.execute(update(m.IdempotencyKey).where(m.IdempotencyKey.key == key).values(
                status=status, response={"fingerprint": fingerprint, "body": body}))

    def release_idempotency_key(self, key: str) -> None:
        """The request failed before it could answer: a retry may do the work."""
        with self.session() as s:
            s.execute(delete(m.IdempotencyKey).where(m.IdempotencyKey.key == key,
                                                     m.IdempotencyKey.status == IN_PROGRESS))

    def _prune_idempotency_keys(self, now: datetime) -> None:
        tick = time.monotonic()
        if tick - self._idempotency_pruned_at < _PRUNE_EVERY_S:
            return
        self._idempotency_pruned_at = tick
        with self.session() as s:
            s.execute(delete(m.IdempotencyKey).where(
                m.IdempotencyKey.created_at < now - RETENTION))

    def idempotency_answer(self, key: str) -> StoredAnswer | None:
        """The stored row for ``key`` (tests and support)."""
        with self.session() as s:
            row = s.scalar(select(m.IdempotencyKey).where(m.IdempotencyKey.key == key))
            if row is None:
                return None
            return StoredAnswer(row.status, str((row.response or {}).get("fingerprint", "")),
                                (row.response or {}).get("body"))
