"""The interfaces the service needs from the outside world: the doors (sender, channel,
mailbox, clock) and the rows the use-cases read. The narrow stores each use-case is given
(``worker/usecases``, the planner) are in ``worker/ports_store.py``.

Adapters implement them (``worker/adapters``); only ``worker/app.py`` picks which.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

#: Wakes the worker's loop (a use-case that makes work due now calls it); a no-op when no
#: loop runs (commands, tests).
Wake = Callable[[], None]


class Clock(Protocol):
    """Where "now" comes from; tests pass a controllable one."""

    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


# --- outbound ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Envelope:
    """One mail ready to hand over: the SMTP envelope and the finished message bytes (CRLF)."""

    mail_from: str
    rcpt_to: str
    message_id: str
    data: bytes
    mailbox: str = "default"


@dataclass(frozen=True)
class SendResult:
    """What the server answered for an accepted mail."""

    code: int
    message: str


class Sender(Protocol):
    """Hands mail to a server (SMTP) or a folder (Maildir).

    ``open_channel`` returns one connection; each channel sends one mail at a time, so the
    caller can record each answer before that channel hands over its next mail.
    Raises TransientDeliveryError or PermanentDeliveryError.
    """

    async def open_channel(self, mailbox: str) -> Channel: ...

    def channels_for(self, mailbox: str) -> int: ...

    async def close(self) -> None: ...


class Gate:
    """Whether a mail may be handed over; known once the ledger has answered. A channel
    prepares the transaction meanwhile (MAIL, RCPT, the message) and awaits the gate only
    before the final step that hands the mail over, so the ledger's latency is hidden."""

    def __init__(self, decision: Awaitable[Collection[str]], message_id: str) -> None:
        self._decision = decision  # a task or future: the message ids allowed
        self._message_id = message_id
        self._allowed: bool | None = None

    async def allowed(self) -> bool:
        if self._allowed is None:
            self._allowed = self._message_id in await self._decision
        return self._allowed

    def known(self) -> bool | None:
        """The answer if the ledger has already given it, else None (without waiting)."""
        if self._allowed is None and isinstance(self._decision, asyncio.Future) \
                and self._decision.done() and not self._decision.cancelled() \
                and self._decision.exception() is None:
            self._allowed = self._message_id in self._decision.result()
        return self._allowed


class Channel(Protocol):
    async def send(self, envelope: Envelope, gate: Gate | None = None) -> SendResult | None:
        """Hand one mail over; None if the gate said no (the mail was withdrawn)."""
        ...

    async def close(self) -> None: ...


# --- inbound -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RawMessage:
    """A message as it was found in a watched mailbox.

    ``uid`` is the IMAP UID (as text) or the Maildir file name; ``uidvalidity`` is 0 for
    Maildir. ``data`` may be cut after ``max_bytes`` for huge messages; ``size`` is the size
    the server reported.
    """

    mailbox: str
    folder: str
    uid: str
    uidvalidity: int
    data: bytes
    size: int
    received_at: datetime | None = None


@dataclass(frozen=True)
class ReplyThread:
    """Who answering a forwarded reply goes to (the lead), and the thread of the lead's mail:
    bare Message-IDs, ``references`` oldest first and space-separated."""

    name: str | None
    address: str
    in_reply_to: str | None
    references: str | None


class InboundSink(Protocol):
    """Receives every new message. Must be idempotent (the same message handed twice is
    recorded once) and durable before it returns; thread-safe (watchers call it from their
    own threads). Returns False if the message had already been recorded."""

    def handle(self, message: RawMessage) -> bool: ...


@dataclass(frozen=True)
class Checkpoint:
    uidvalidity: int
    last_uid: int


class CheckpointStore(Protocol):
    """Where a watcher keeps its place, and which worker may watch a mailbox."""

    def load_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None: ...

    def save_checkpoint(self, mailbox: str, folder: str, checkpoint: Checkpoint,
                        success_at: datetime) -> None: ...

    def acquire_watch(self, mailbox: str, worker_id: str, lease_s: float) -> bool:
        """Take or renew the right to watch ``mailbox``; False while another worker holds it."""
        ...

    def release_watch(self, mailbox: str, worker_id: str) -> None: ...


class Mailbox(Protocol):
    """One watched mailbox (IMAP folder or Maildir), with its own thread."""

    name: str

    def start(self, stop: threading.Event,
              on_died: Callable[[str, BaseException], None] | None = None) -> None:
        """Start watching in a background thread; return at once. If the thread ends with
        an exception (not an error it retries), it calls ``on_died(name, exc)`` first."""
        ...

    def join(self, timeout_s: float) -> None: ...

    def fence(self, timeout_s: float) -> bool:
        """Block until every message present in the mailbox when this was called has been
        handed to the sink. False if that could not be done within the timeout."""
        ...

    @property
    def last_success_at(self) -> datetime | None: ...


# --- what the use-cases are given -----------------------------------------------------------
# Rows come back as read-only views: the database adapter returns its ORM rows or small
# dataclasses, the in-memory store of the tests its own; use-cases only read these fields.


@dataclass
class EnrollResult:
    """What intake did with one lead: ``outcome`` is imported, updated or unchanged."""

    lead_id: int
    outcome: str
    enrolled: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


class EnrollmentRow(Protocol):
    """One enrolment of a lead in a campaign."""

    @property
    def id(self) -> int: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def campaign(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def next_step(self) -> int: ...
    @property
    def next_due_at(self) -> datetime | None: ...
    @property
    def enrolled_at(self) -> datetime: ...
    @property
    def last_touch_at(self) -> datetime | None: ...
    @property
    def priority(self) -> int: ...


class Stored(Protocol):
    """A lead stored by intake: its id and ``imported | updated | unchanged``."""

    @property
    def lead_id(self) -> int: ...
    @property
    def outcome(self) -> str: ...


class SentRow(Protocol):
    """One mail of ours, found by its Message-ID (what an inbound message answers)."""

    @property
    def touch_id(self) -> int: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def campaign(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def touch_number(self) -> int | None: ...


class TaskRow(Protocol):
    """A follow-up task (a touch of kind ``task``)."""

    @property
    def id(self) -> int: ...
    @property
    def lead_id(self) -> int: ...
    @property
    def enrollment_id(self) -> int: ...
    @property
    def campaign(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def owner(self) -> str | None: ...
    @property
    def task_kind(self) -> str | None: ...
    @property
    def task_text(self) -> str | None: ...
    @property
    def due_at(self) -> datetime | None: ...


class InboundMetrics(Protocol):
    """The counters inbound handling feeds."""

    def inbound_message(self, cls: str) -> None: ...
    def replied(self, seconds: float) -> None: ...
