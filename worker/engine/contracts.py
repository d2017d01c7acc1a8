"""What the loop needs from the rest of the worker, as narrow protocols: the store it reads
and writes itself, the notification use-case and the metrics. The database adapter, the
``Notify`` use-case and ``Metrics`` satisfy them; tests may hand in fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from datetime import datetime
from typing import Any, Protocol

from worker.domain.send_rows import ClaimRow
from worker.engine.dispatch import SendMetrics
from worker.usecases.notify import NoteRow


class LoopStore(Protocol):
    """What the loop reads and writes itself (claims, due times, liveness, notifications).

    Spans rooms (claims and due times in ``db.sending``, liveness and the notification queue
    in ``db.inbox``, the WAL checkpoint on the connection): the composition root hands the
    ``Database`` facade, which forwards them by name."""

    def claim_rows(self, worker_id: str, now: datetime, limit: int,
                   lease_s: float) -> list[ClaimRow]: ...
    def due_backlog(self, now: datetime) -> tuple[int, datetime | None]: ...
    def next_due_at(self) -> datetime | None: ...
    def heartbeat(self, worker_id: str) -> None: ...
    def renew_claims(self, worker_id: str, lease_s: float) -> Any: ...
    def checkpoint(self) -> None: ...
    def unsent_notifications(self) -> Sequence[NoteRow]: ...
    def mark_notification(self, note_id: int, error: str | None) -> None: ...
    def release_claims(self, worker_id: str, enrollment_ids: Any) -> int: ...


class Notifier(Protocol):
    """Notifications and the daily task digest (``usecases.notify.Notify``)."""

    async def send(self, note: NoteRow) -> str | None: ...
    def digest_if_due(self) -> None: ...


class LoopMetrics(SendMetrics, Protocol):
    """The metrics the loop moves (the send counters)."""


#: A supervised side task of the loop: runs until the stop event is set (webhook delivery).
SideJob = Callable[[asyncio.Event], Coroutine[Any, Any, Any]]
