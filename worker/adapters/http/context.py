"""What the HTTP door needs from the rest of the worker, as narrow protocols, and the
``Context`` its handlers share. The door imports neither the composition root nor the
loop: ``App.start_http`` builds ``HttpPorts`` and hands it over with the loop's state.

Intake and events (``service``), the unsubscribe link (``by_hand`` and ``db``), health
(``db.ping``, the due backlog, the mailboxes' last success, the last send), the metrics
text (``metrics``) and stopping (``LoopState.stop_event``).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar

from starlette.routing import BaseRoute

from worker.adapters.db.http_store import StoredAnswer
from worker.config import Settings
from worker.domain.model import Lead
from worker.domain.webhook_retry import EndpointStats
from worker.ports import Clock, EnrollResult, Mailbox

R = TypeVar("R")


class IntakePort(Protocol):
    """``POST /api/leads`` and ``POST /api/events``."""

    def intake(self, data: Mapping[str, Any], campaign: str | None = None,
               tags: list[str] | None = None, source: str | None = None,
               priority: int = 0) -> EnrollResult: ...
    def record_event(self, email: str, kind: str, fields: Mapping[str, Any],
                     source: str | None = None) -> tuple[int, list[str]]: ...


class UnsubscribePort(Protocol):
    """``POST /u/{token}`` and ``POST /api/leads/{email}/unsubscribe``."""

    def lead_id(self, email: str) -> int: ...
    def unsubscribe(self, lead_id: int, source: str) -> bool: ...


class MailboxStateRow(Protocol):
    """A watched mailbox's stored state (its last successful poll)."""

    @property
    def mailbox(self) -> str: ...
    @property
    def last_success_at(self) -> datetime | None: ...


class HttpStore(Protocol):
    """The reads and idempotency records the door does itself."""

    @property
    def is_sqlite(self) -> bool: ...
    def ping(self) -> bool: ...
    def lead_by_id(self, lead_id: int) -> Lead | None: ...
    def suppression_for(self, email: str) -> str | None: ...
    def due_backlog(self, now: datetime) -> tuple[int, datetime | None]: ...
    def mailbox_states(self) -> Sequence[MailboxStateRow]: ...
    def webhook_stats(self) -> Mapping[str, EndpointStats]: ...
    def reserve_idempotency_key(self, key: str, fingerprint: str) -> StoredAnswer | None: ...
    def finish_idempotency_key(self, key: str, fingerprint: str, status: int,
                               body: dict[str, Any]) -> None: ...
    def release_idempotency_key(self, key: str) -> None: ...


class MetricsText(Protocol):
    """The Prometheus text, with the backlog gauges refreshed at scrape time."""

    def render(self, refresh: Callable[[], None] | None = None) -> bytes: ...
    def set_backlog(self, count: int, lag_s: float) -> None: ...
    def set_webhook_backlog(self, pending: Mapping[str, int]) -> None: ...


@dataclass(frozen=True)
class HttpPorts:
    """Everything the door uses besides the loop's state, built by the composition root.

    Args:
        settings: ``[http]`` (listen address, limits), ``api_token``, the grace period.
        service: intake and events.
        by_hand: the unsubscribe link's and the API's action.
        db: the door's own reads and idempotency records.
        clock: the due backlog's lag.
        metrics: the Prometheus text.
        inbound: the watched mailboxes (their last success, for ``/healthz``).
        secret_key: verifies unsubscribe tokens.
        stopped: mailboxes that must not send and why ("paused: bounce rate ...").
    """

    settings: Settings
    service: IntakePort
    by_hand: UnsubscribePort
    db: HttpStore
    clock: Clock
    metrics: MetricsText
    inbound: Sequence[Mailbox]
    secret_key: bytes
    workspace: BaseRoute | None = None
    stopped: Callable[[], Mapping[str, str]] = dict


class LoopState(Protocol):
    """The running loop, read by ``/healthz``; the door stops with it."""

    @property
    def stop_event(self) -> asyncio.Event: ...
    @property
    def last_send_ok_at(self) -> datetime | None: ...
    @property
    def last_send_error(self) -> str | None: ...
    @property
    def smtp_failing_since(self) -> datetime | None: ...
    @property
    def started_at_wall(self) -> datetime: ...


@dataclass
class Context:
    """What the handlers need: the worker's ports, the loop's state, the signing key, the
    thread pool."""

    app: HttpPorts
    runner: LoopState
    secret_key: bytes
    pool: ThreadPoolExecutor

    async def run(self, fn: Callable[..., R], *args: Any) -> R:
        """Run blocking database writes in the HTTP pool."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.pool, functools.partial(fn, *args))
