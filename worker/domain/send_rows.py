"""The rows the sending path passes between the planner, the channels and the ledger.

Pure values (they may cross to the render process): the engine plans and records them, the
database adapter (``adapters/db/ledger.py``) reads and writes them; both import them from
here, so the arrows point inward."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

from worker.domain.sequence import DueItem


class ClaimRow(NamedTuple):
    """An enrolment as the claim returned it (plain values: it may cross to another process)."""

    id: int
    lead_id: int
    campaign: str
    status: str
    next_step: int
    next_due_at: datetime | None
    enrolled_at: datetime
    last_touch_at: datetime | None
    priority: int
    attempts: int | None


@dataclass(frozen=True)
class Claimed:
    """A claimed enrolment with its lead and prior touches, ready to plan."""
    item: DueItem
    campaign: str
    priority: int


@dataclass
class PlannedTouch:
    """A row for ``touches`` decided by the planner."""

    enrollment_id: int
    lead_id: int
    campaign: str
    step_id: str
    step_index: int
    kind: str
    state: str
    touch_number: int | None = None
    message_id: str | None = None
    mailbox: str | None = None
    subject: str | None = None
    task_kind: str | None = None
    task_text: str | None = None
    owner: str | None = None
    due_at: datetime | None = None
    note: str | None = None


@dataclass
class EnrollmentChange:
    """What planning changes on an enrolment."""
    enrollment_id: int
    lead_id: int
    next_step: int | None = None
    next_due_at: datetime | None = None
    status: str | None = None
    reason: str | None = None
    last_touch_at: datetime | None = None
    attempts: int | None = None
    release: bool = True
    on_finish: str | None = None
    on_finish_due: datetime | None = None
    basis_at: datetime | None = None  # the send time next_due_at was computed from
    from_status: str | None = None    # the status when claimed (None: unknown)

    def due_when_accepted(self, now: datetime) -> datetime | None:
        """``next_due_at`` for a mail accepted at ``now``: a wait counts from when the mail
        was accepted, not from when it was planned."""
        due = self.next_due_at
        if due is not None and self.basis_at is not None and now > self.basis_at:
            due += now - self.basis_at
        return due


@dataclass
class Outcome:
    """What happened to one handed-over mail, for the ledger."""

    message_id: str
    enrollment_id: int
    lead_id: int
    state: str                  # accepted | failed | bounced | deferred
    code: int | None
    response: str
    change: EnrollmentChange | None = None
