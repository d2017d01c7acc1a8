"""An in-memory store implementing the use-case store protocols of ``worker.ports``
(``LeadStore``, ``InboxStore``, ``SuppressionStore``, ``NotificationStore``, ``DigestStore``,
and the reply-intent ones: ``OwnerTaskStore``, ``SuppressedLookup``, ``ReclassifyStore``), so use-case tests run without a database where the database is not what they test.

It keeps the contract the use-cases rely on (an address is stored once; one open enrolment
per lead and campaign; closing moves only open enrolments; a message is recorded once), not
the database's details (canonical spellings, domain suppressions, claims, SQL ordering).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from worker.domain.leads import LeadInput
from worker.domain.model import LEAD_COLUMNS, OPEN_STATUSES, EnrollmentStatus, Lead
from worker.errors import NotFound, UserError
from worker.ports import Clock, ReplyThread
from worker.ports_store import InboundRecord, Reclassification

OPEN = tuple(s.value for s in OPEN_STATUSES)


@dataclass(frozen=True)
class Stored:
    lead_id: int
    outcome: str


@dataclass
class Enrollment:
    id: int
    lead_id: int
    campaign: str
    status: str
    next_due_at: datetime | None
    enrolled_at: datetime
    priority: int = 0
    next_step: int = 0
    last_touch_at: datetime | None = None
    status_reason: str = ""


@dataclass
class Touch:
    """A mail of ours or a task."""

    id: int
    lead_id: int
    enrollment_id: int
    campaign: str
    step_id: str
    kind: str = "email"
    state: str = "accepted"
    message_id: str = ""
    touch_number: int | None = None
    owner: str | None = None
    task_kind: str | None = None
    task_text: str | None = None
    due_at: datetime | None = None
    done_at: datetime | None = None
    note: str | None = None

    @property
    def touch_id(self) -> int:
        return self.id


@dataclass(frozen=True)
class Note:
    kind: str
    to_addr: str
    subject: str
    body: str
    mailbox: str
    reply: ReplyThread | None


@dataclass
class MemStore:
    """Every table the use-cases touch, as lists and dicts."""

    clock: Clock
    leads: dict[int, Lead] = field(default_factory=dict)
    suppressed: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    events: list[tuple[int, str, dict[str, Any], str | None]] = field(default_factory=list)
    enrollments: list[Enrollment] = field(default_factory=list)
    status_changes: list[tuple[int, str | None, str, str]] = field(default_factory=list)
    touches: list[Touch] = field(default_factory=list)
    inbound: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    soft_bounces: list[tuple[int, datetime]] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    leases: set[str] = field(default_factory=set)
    reclassifications: list[Reclassification] = field(default_factory=list)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # --- leads ----------------------------------------------------------------------------

    def upsert_leads(self, items: Sequence[tuple[LeadInput, str | None]]) -> list[Stored]:
        out = []
        for inp, _source in items:
            found = self.lead_by_email(inp.email)
            if found is None:
                lead = Lead(email=inp.email, id=next(self._ids), tags=tuple(inp.tags),
                            fields=dict(inp.fields),
                            **{k: inp.columns.get(k) for k in LEAD_COLUMNS if k != "email"})
                self.leads[lead.id] = lead
                out.append(Stored(lead.id, "imported"))
                continue
            columns: dict[str, Any] = {k: v for k, v in inp.columns.items() if v is not None}
            merged = dataclasses.replace(
                found, **columns, tags=tuple(sorted(set(found.tags) | set(inp.tags))),
                fields={**found.fields, **{k: v for k, v in inp.fields.items() if v is not None}})
            self.leads[found.id] = merged
            out.append(Stored(found.id, "unchanged" if merged == found else "updated"))
        return out

    def lead_by_email(self, email: str) -> Lead | None:
        return next((lead for lead in self.leads.values() if lead.email == email.lower()), None)

    def lead_by_id(self, lead_id: int) -> Lead | None:
        return self.leads.get(lead_id)

    def lead_ids_by_domain(self, domain: str) -> list[int]:
        return [lead.id for lead in self.leads.values() if lead.domain == domain]

    def lead_id_by_emails(self, addresses: Sequence[str]) -> int | None:
        found = (self.lead_by_email(a) for a in addresses if a)
        return next((lead.id for lead in found if lead is not None), None)

    # --- suppression and events -----------------------------------------------------------

    def suppression_for(self, email: str) -> str | None:
        found = self.suppressed.get(email.lower())
        return found[0] if found else None

    def add_suppression(self, email: str | None, reason: str, source: str | None, *,
                        how: str | None = None) -> bool:
        assert email is not None
        if email.lower() in self.suppressed:
            return False
        self.suppressed[email.lower()] = (reason, source)
        return True

    def suppress_lead(self, lead_id: int, reason: str, status: EnrollmentStatus, why: str, *,
                      how: str | None = None
                      ) -> tuple[Lead, bool, list[tuple[int, str]]] | None:
        with self._lock:
            lead = self.leads.get(lead_id)
            if lead is None:
                return None
            added = self.add_suppression(lead.email, reason, why, how=how)
            return lead, added, self.close_enrollments([lead_id], status, why)

    def add_event(self, lead_id: int, kind: str, fields: dict[str, Any],
                  source: str | None) -> tuple[int, list[str]]:
        self.events.append((lead_id, kind, fields, source))
        types = [k for i, k, _, _ in self.events if i == lead_id]
        return len(types), types

    # --- enrolments -----------------------------------------------------------------------

    def enroll(self, lead_id: int, campaign: str, next_due_at: datetime | None,
               priority: int = 0, reason: str = "enrolled") -> tuple[int, bool]:
        for row in self.enrollments_of(lead_id, campaign, OPEN):
            if priority:
                row.priority = priority
            return row.id, False
        row = Enrollment(next(self._ids), lead_id, campaign, "active", next_due_at,
                         self.clock.now(), priority)
        self.enrollments.append(row)
        self.status_changes.append((row.id, None, "active", reason))
        return row.id, True

    def enrollments_of(self, lead_id: int, campaign: str | None = None,
                       statuses: Sequence[str] | None = None) -> list[Enrollment]:
        return [r for r in self.enrollments if r.lead_id == lead_id
                and (not campaign or r.campaign == campaign)
                and (not statuses or r.status in statuses)]

    def close_enrollments(self, lead_ids: Sequence[int], status: EnrollmentStatus, reason: str,
                          from_statuses: Sequence[str] = OPEN, campaign: str | None = None
                          ) -> list[tuple[int, str]]:
        closed = []
        for row in self.enrollments:
            if row.lead_id in lead_ids and row.status in from_statuses and (
                    not campaign or row.campaign == campaign):
                self.status_changes.append((row.id, row.status, status.value, reason))
                row.status, row.status_reason, row.next_due_at = status.value, reason, None
                closed.append((row.id, row.campaign))
        return closed

    def set_enrollment(self, enrollment_id: int, *, status: str, reason: str,
                       next_due_at: datetime | None = None, **extra: Any) -> None:
        for row in self.enrollments:
            if row.id == enrollment_id:
                if row.status != status:
                    self.status_changes.append((row.id, row.status, status, reason))
                row.status, row.status_reason, row.next_due_at = status, reason, next_due_at
                for key, value in extra.items():
                    setattr(row, key, value)

    def prioritize(self, enrollment_ids: Sequence[int]) -> None:
        for row in self.enrollments:
            if row.id in enrollment_ids:
                row.priority = 1

    # --- touches and tasks ----------------------------------------------------------------

    def add_touch(self, enrollment: Enrollment, step_id: str, **values: Any) -> Touch:
        """A test's way of saying "we sent this mail" or "this task is open"."""
        touch = Touch(next(self._ids), enrollment.lead_id, enrollment.id, enrollment.campaign,
                      step_id, **values)
        self.touches.append(touch)
        return touch

    def finish_task(self, touch_id: int, note: str | None, now: datetime) -> Touch:
        touch = next((t for t in self.touches if t.id == touch_id and t.kind == "task"), None)
        if touch is None:
            raise NotFound(f"no task {touch_id}")
        if touch.state == "done":
            raise UserError(f"task {touch_id} is already done")
        touch.state, touch.done_at, touch.note = "done", now, note or touch.note
        return touch

    def open_tasks(self, owner: str | None = None) -> list[tuple[Touch, str, str | None]]:
        out = []
        for t in self.touches:
            if t.kind == "task" and t.state == "open" and (not owner or t.owner == owner):
                lead = self.leads[t.lead_id]
                out.append((t, lead.email, lead.timezone))
        return out

    def sent_by_message_ids(self, message_ids: Sequence[str]) -> Touch | None:
        for message_id in (i.strip("<> ") for i in message_ids if i):
            found = next((t for t in self.touches if t.message_id == message_id), None)
            if found is not None:
                return found
        return None

    def last_email_to(self, lead_id: int) -> Touch | None:
        sent = [t for t in self.touches if t.lead_id == lead_id and t.kind == "email"]
        return sent[-1] if sent else None

    # --- inbound --------------------------------------------------------------------------

    @contextlib.contextmanager
    def inbound_lock(self, mailbox: str, fingerprint: str) -> Iterator[None]:
        with self._lock:
            yield

    def inbound_seen(self, mailbox: str, fingerprint: str) -> bool:
        return (mailbox, fingerprint) in self.inbound

    def record_inbound(self, values: dict[str, Any], text: str | None = None) -> int | None:
        key = (values["mailbox"], values["fingerprint"])
        if key in self.inbound:
            return None
        self.inbound[key] = {**values, "id": len(self.inbound) + 1}
        return len(self.inbound)

    def add_soft_bounce(self, lead_id: int, window_days: int) -> int:
        now = self.clock.now()
        self.soft_bounces.append((lead_id, now))
        since = now - timedelta(days=window_days)
        return sum(1 for i, at in self.soft_bounces if i == lead_id and at >= since)

    # --- notifications and leases ---------------------------------------------------------

    def add_notification(self, kind: str, to_addr: str, subject: str, body: str,
                         mailbox: str = "default", reply: ReplyThread | None = None) -> int:
        self.notes.append(Note(kind, to_addr, subject, body, mailbox, reply))
        return len(self.notes)

    def acquire_lease(self, name: str, holder: str, lease_s: float) -> bool:
        if name in self.leases:
            return False
        self.leases.add(name)
        return True

    # --- reply intent: owner tasks, suppressed addresses, reclassification ------------------

    def add_owner_task(self, lead_id: int, enrollment_id: int, campaign: str, kind: str,
                       text: str, owner: str | None, due_at: datetime, now: datetime,
                       key: str = "") -> int:
        step = f"reply:{kind}" + (f":{key}" if key else "")
        for t in self.touches:
            if t.enrollment_id == enrollment_id and t.step_id == step and t.state == "open":
                return t.id  # asked again while open: that task
        touch = Touch(next(self._ids), lead_id, enrollment_id, campaign, step, kind="task",
                      state="open", owner=owner, task_kind=kind, task_text=text, due_at=due_at)
        self.touches.append(touch)
        return touch.id

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, str]:
        return {e: self.suppressed[e.lower()][0] for e in emails if e.lower() in self.suppressed}

    def inbound_message(self, inbound_id: int) -> InboundRecord | None:
        v = next((v for v in self.inbound.values() if v["id"] == inbound_id), None)
        if v is None:
            return None
        return InboundRecord(v["id"], v["lead_id"], v["cls"], v["subclass"], v["reason"],
                             v["return_date"], v["from_addr"], v["subject"], v["excerpt"],
                             v["message_id"], v["received_at"], v["received_at"])

    def lift_suppression(self, email: str, reasons: Sequence[str]) -> bool:
        found = self.suppressed.get(email.lower())
        if found is None or found[0] not in reasons:
            return False
        del self.suppressed[email.lower()]
        return True

    def last_status_change(self, enrollment_id: int) -> tuple[str | None, str] | None:
        mine = [(old, new) for i, old, new, _ in self.status_changes if i == enrollment_id]
        return mine[-1] if mine else None

    def record_reclassification(self, record: InboundRecord, new_class: str,
                                new_subclass: str | None, by: str, undone: str,
                                action: str, now: datetime) -> None:
        for v in self.inbound.values():
            if v["id"] == record.id:
                v.update(cls=new_class, subclass=new_subclass, action=action)
        self.reclassifications.append(Reclassification(
            record.id, record.cls, record.subclass, new_class, new_subclass, by, now, undone,
            action))

    def reclassifications_of(self, lead_id: int) -> list[Reclassification]:
        ids = {v["id"] for v in self.inbound.values() if v["lead_id"] == lead_id}
        return [r for r in self.reclassifications if r.inbound_id in ids]
