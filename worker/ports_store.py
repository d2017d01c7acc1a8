"""The narrow stores each use-case (``worker/usecases``) and the planner are given.

Each protocol names the database room that implements it (``db.leads``, ``db.sending``,
``db.inbox``, ``db.reports``); where one spans rooms its docstring says so, and the
composition root (``worker/app.py``) hands the ``Database`` facade there. The in-memory store
of the tests (``tests/memstore.py``) implements the lead, inbox and notification ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from worker.domain.leads import LeadInput
from worker.domain.model import EnrollmentStatus, Lead
from worker.domain.send_rows import Claimed, ClaimRow, EnrollmentChange, PlannedTouch
from worker.ports import EnrollmentRow, ReplyThread, SentRow, Stored, TaskRow


class SuppressionStore(Protocol):
    """What "this address is dead" needs: the lead, the suppression list, its enrolments.
    The lead room (``db.leads``)."""

    def lead_by_id(self, lead_id: int) -> Lead | None: ...
    def suppression_for(self, email: str) -> str | None: ...
    def add_suppression(self, email: str | None, reason: str, source: str | None, *,
                        how: str | None = None) -> bool: ...
    def close_enrollments(self, lead_ids: Sequence[int], status: EnrollmentStatus,
                          reason: str, from_statuses: Sequence[str] = ...,
                          campaign: str | None = None) -> list[tuple[int, str]]: ...
    def suppress_lead(self, lead_id: int, reason: str, status: EnrollmentStatus, why: str, *,
                      how: str | None = None
                      ) -> tuple[Lead, bool, list[tuple[int, str]]] | None: ...


class NotificationStore(Protocol):
    """Mail to people on our side, queued (the worker sends the queue). The inbox room
    (``db.inbox``)."""

    def add_notification(self, kind: str, to_addr: str, subject: str, body: str,
                         mailbox: str = "default", reply: ReplyThread | None = None) -> int: ...


class LeadStore(SuppressionStore, Protocol):
    """Leads, events and enrolments: what intake and the by-hand actions need. One room:
    the database adapter's lead room (``db.leads``)."""

    def upsert_leads(self, items: Sequence[tuple[LeadInput, str | None]]) -> Sequence[Stored]: ...
    def lead_by_email(self, email: str) -> Lead | None: ...
    def lead_ids_by_domain(self, domain: str) -> list[int]: ...
    def add_event(self, lead_id: int, kind: str, fields: dict[str, Any],
                  source: str | None) -> tuple[int, list[str]]: ...
    def enroll(self, lead_id: int, campaign: str, next_due_at: datetime | None,
               priority: int = 0, reason: str = "enrolled") -> tuple[int, bool]: ...
    def enrollments_of(self, lead_id: int, campaign: str | None = None,
                       statuses: Sequence[str] | None = None) -> Sequence[EnrollmentRow]: ...
    def set_enrollment(self, enrollment_id: int, *, status: str, reason: str,
                       next_due_at: datetime | None = None, **extra: Any) -> None: ...
    def prioritize(self, enrollment_ids: Sequence[int]) -> None: ...
    def finish_task(self, touch_id: int, note: str | None, now: datetime) -> TaskRow: ...


class InboxStore(LeadStore, NotificationStore, Protocol):
    """Inbound messages: one handler per message, recorded once, matched to our mails.

    Spans two rooms (inbound mail and notifications in ``db.inbox``, leads and enrolments in
    ``db.leads``): the composition root hands the ``Database`` facade, which forwards both
    rooms' methods by name."""

    def inbound_lock(self, mailbox: str, fingerprint: str) -> AbstractContextManager[None]: ...
    def inbound_seen(self, mailbox: str, fingerprint: str) -> bool: ...
    def record_inbound(self, values: dict[str, Any],
                       text: str | None = None) -> int | None: ...
    def sent_by_message_ids(self, message_ids: Sequence[str]) -> SentRow | None: ...
    def lead_id_by_emails(self, addresses: Sequence[str]) -> int | None: ...
    def last_email_to(self, lead_id: int) -> SentRow | None: ...
    def add_soft_bounce(self, lead_id: int, window_days: int) -> int: ...


class OwnerTaskStore(Protocol):
    """Tasks for a lead's owner that a reply's intent asks for (issue 14)."""

    def add_owner_task(self, lead_id: int, enrollment_id: int, campaign: str, kind: str,
                       text: str, owner: str | None, due_at: datetime, now: datetime,
                       key: str = "") -> int: ...


class SuppressedLookup(Protocol):
    """Which of some addresses are suppressed (never made a lead by a referral, never mailed
    by the planner). The lead room (``db.leads``)."""

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, str]: ...


class DigestStore(NotificationStore, Protocol):
    """The daily task digest's lease (one worker a day writes it) and the queue it goes to.
    The inbox room (``db.inbox``)."""

    def acquire_lease(self, name: str, holder: str, lease_s: float) -> bool: ...


class OpenTasks(Protocol):
    """The open follow-up tasks, with the lead's address and owner. The reporting room
    (``db.reports``, read-only)."""

    def open_tasks(self, owner: str | None = None
                   ) -> Sequence[tuple[TaskRow, str, str | None]]: ...


class PlanStore(Protocol):
    """What the planner reads and records: the sending room (``db.sending``)."""

    def load_claimed(self, rows: Sequence[ClaimRow]) -> list[Claimed]: ...
    def plan(self, touches: Sequence[PlannedTouch], changes: Sequence[EnrollmentChange],
             now: datetime, caps: dict[str, Any] | None = None) -> set[str]: ...


@dataclass(frozen=True)
class InboundRecord:
    """A stored inbound message, as a correction of its class reads it."""

    id: int
    lead_id: int | None
    cls: str
    subclass: str | None
    reason: str
    return_date: date | None
    from_addr: str | None
    subject: str
    excerpt: str
    message_id: str | None
    received_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class Reclassification:
    """One correction of a message's class: the old and new class, who, when, what was
    undone and what the new class did."""

    inbound_id: int
    old_class: str
    old_subclass: str | None
    new_class: str
    new_subclass: str | None
    by: str
    at: datetime
    undone: str
    action: str


class ReclassifyStore(Protocol):
    """What correcting a message's class needs beyond the inbox: the message, lifting a
    suppression, an enrolment's last status change, the record of the correction. The
    reclassification room (``worker/adapters/db/reclassifications.py``)."""

    def inbound_message(self, inbound_id: int) -> InboundRecord | None: ...
    def lift_suppression(self, email: str, reasons: Sequence[str]) -> bool: ...
    def last_status_change(self, enrollment_id: int) -> tuple[str | None, str] | None: ...
    def record_reclassification(self, record: InboundRecord, new_class: str,
                                new_subclass: str | None, by: str, undone: str,
                                action: str, now: datetime) -> None: ...
    def reclassifications_of(self, lead_id: int) -> Sequence[Reclassification]: ...
