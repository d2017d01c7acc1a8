"""Sending state: claims with leases, the planned -> handed over -> accepted ledger, caps.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one worker (file lock), so
its claims need no row locks. A claim is the worker's right to act on an enrolment: anything
that changes the enrolment meanwhile (a reply, a pause) drops the claim, and a mail is only
handed over while its enrolment is still claimed by this worker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, insert, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite

from worker.adapters.db import models as m
from worker.adapters.db.store import BaseStore, to_domain
from worker.domain.model import DUE_STATUSES
from worker.domain.sequence import DueItem, PriorTouch

DUE = [s.value for s in DUE_STATUSES]
E, T = m.Enrollment, m.Touch


@dataclass(frozen=True)
class Claimed:
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


class SendingMixin(BaseStore):

    def release_all_claims(self) -> int:
        """A starting SQLite worker is the only one: nothing is claimed by anyone alive."""
        with self.session() as s:
            result = s.execute(update(E).where(E.claimed_by.is_not(None))
                               .values(claimed_by=None, claimed_until=None))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def release_claims(self, worker_id: str, enrollment_ids: Sequence[int] | None = None) -> int:
        with self.session() as s:
            query = update(E).where(E.claimed_by == worker_id)
            if enrollment_ids is not None:
                query = query.where(E.id.in_(list(enrollment_ids)))
            result = s.execute(query.values(claimed_by=None, claimed_until=None))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def renew_claims(self, worker_id: str, lease_s: float) -> None:
        until = self.now() + timedelta(seconds=lease_s)
        with self.session() as s:
            s.execute(update(E).where(E.claimed_by == worker_id).values(claimed_until=until))

    def next_due_at(self) -> datetime | None:
        """The earliest due time of any open enrolment (uses the partial index)."""
        with self.session() as s:
            return s.scalar(select(func.min(E.next_due_at)).where(E.status.in_(DUE)))

    def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        with self.session() as s:
            row = s.execute(select(func.count(), func.min(E.next_due_at)).where(
                E.status.in_(DUE), E.next_due_at <= now)).one()
            return int(row[0]), row[1]

    def wake_newsletter(self, campaign: str, issues: Sequence[Any]) -> int:
        """Give newsletter members without a next date the earliest recent or coming issue
        (the exact time per member's zone is settled when it is claimed)."""
        today = self.now().date()
        dates = [i.send_on for i in issues if i.send_on >= today - timedelta(days=2)]
        if not dates:
            return 0
        first = min(dates)
        due = datetime(first.year, first.month, first.day, tzinfo=UTC) - timedelta(hours=14)
        with self.session() as s:
            result = s.execute(update(E).where(
                E.campaign == campaign, E.status == "active", E.next_due_at.is_(None))
                .values(next_due_at=due))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def claim_due(self, worker_id: str, now: datetime, limit: int, lease_s: float) -> list[Claimed]:
        """Claim up to ``limit`` due enrolments, contact requests first."""
        until = now + timedelta(seconds=lease_s)
        claimable = and_(E.status.in_(DUE), E.next_due_at <= now,
                         or_(E.claimed_until.is_(None), E.claimed_until < now))
        claimed: list[Any] = []
        with self.session() as s:
            for first in (True, False):
                room = limit - len(claimed)
                if room <= 0:
                    break
                pick = select(E.id).where(claimable)
                pick = (pick.where(E.priority > 0).order_by(E.priority.desc(), E.next_due_at)
                        if first else pick.order_by(E.next_due_at))
                pick = pick.limit(room)
                if not self.is_sqlite:
                    pick = pick.with_for_update(skip_locked=True)
                rows = s.execute(update(E).where(E.id.in_(pick.scalar_subquery()))
                                 .values(claimed_by=worker_id, claimed_until=until)
                                 .returning(E.id, E.lead_id, E.campaign, E.status, E.next_step,
                                            E.next_due_at, E.enrolled_at, E.last_touch_at,
                                            E.priority)
                                 .execution_options(synchronize_session=False)).all()
                claimed.extend(rows)
            if not claimed:
                return []
            ids = [r.id for r in claimed]
            leads = {row.id: to_domain(row) for row in
                     s.scalars(select(m.Lead).where(m.Lead.id.in_({r.lead_id for r in claimed})))}
            prior: dict[int, list[PriorTouch]] = defaultdict(list)
            for t in s.execute(select(T.enrollment_id, T.step_id, T.kind, T.state, T.message_id,
                                      T.subject, T.accepted_at, T.created_at)
                               .where(T.enrollment_id.in_(ids)).order_by(T.id)):
                prior[t.enrollment_id].append(PriorTouch(t.step_id, t.kind, t.state, t.message_id,
                                                         t.subject, t.accepted_at or t.created_at))
        return [Claimed(DueItem(r.id, leads[r.lead_id], r.status, r.next_step, r.next_due_at,
                                r.enrolled_at, r.last_touch_at, tuple(prior[r.id])),
                        r.campaign, r.priority) for r in claimed]

    def mailbox_usage(self, mailbox: str, now: datetime) -> tuple[int, int, datetime | None]:
        """Mails planned or sent through ``mailbox`` in the last hour and day, and its first."""
        with self.session() as s:
            return self._usage(s, mailbox, now)

    def _usage(self, s: Any, mailbox: str, now: datetime) -> tuple[int, int, datetime | None]:
        counted = [T.mailbox == mailbox, T.kind == "email",
                   T.state.in_(("planned", "handed_over", "accepted"))]
        hour = s.scalar(select(func.count()).where(*counted, T.planned_at >= now - timedelta(hours=1)))
        day = s.scalar(select(func.count()).where(*counted, T.planned_at >= now - timedelta(days=1)))
        first = s.scalar(select(func.min(T.planned_at)).where(T.mailbox == mailbox))
        return int(hour or 0), int(day or 0), first

    def plan(self, touches: Sequence[PlannedTouch], changes: Sequence[EnrollmentChange],
             now: datetime, caps: dict[str, Any] | None = None) -> set[str]:
        """Record the planner's touches and enrolment changes in one transaction.

        ``caps`` maps a mailbox to a function ``(hour, day, first, now) -> allowed more``; emails over
        the allowance are not planned and their message ids are returned so the caller can
        defer them. On PostgreSQL a row lock per capped mailbox makes the count hold across
        workers."""
        refused: set[str] = set()
        with self.session() as s:
            emails_by_box: dict[str, list[PlannedTouch]] = defaultdict(list)
            for t in touches:
                if t.kind == "email" and t.mailbox:
                    emails_by_box[t.mailbox].append(t)
            for box, items in (caps and emails_by_box.items() or ()):
                if box not in caps:  # type: ignore[operator]
                    continue
                self._lock(s, f"cap:{box}", now)
                hour, day, first = self._usage(s, box, now)
                allowed = caps[box](hour, day, first, now)  # type: ignore[index]
                for extra in items[max(allowed, 0):]:
                    refused.add(extra.message_id or "")
            rows = [self._touch_values(t, now) for t in touches if t.message_id not in refused
                    or t.kind != "email"]
            if rows:
                self._upsert_touches(s, rows)
            self._apply_changes(s, changes, now)
        return refused

    def _lock(self, s: Any, name: str, now: datetime) -> None:
        if self.is_sqlite:
            return
        stmt = postgresql.insert(m.Lease).values(name=name, holder="caps", until=now)
        s.execute(stmt.on_conflict_do_nothing(index_elements=["name"]))
        s.execute(select(m.Lease).where(m.Lease.name == name).with_for_update())

    @staticmethod
    def _touch_values(t: PlannedTouch, now: datetime) -> dict[str, Any]:
        return {"enrollment_id": t.enrollment_id, "lead_id": t.lead_id, "campaign": t.campaign,
                "step_id": t.step_id, "step_index": t.step_index, "kind": t.kind,
                "state": t.state, "touch_number": t.touch_number, "message_id": t.message_id,
                "mailbox": t.mailbox, "subject": t.subject,
                "planned_at": now if t.kind == "email" else None, "task_kind": t.task_kind,
                "task_text": t.task_text, "owner": t.owner, "due_at": t.due_at, "note": t.note,
                "created_at": now}

    def _upsert_touches(self, s: Any, rows: list[dict[str, Any]]) -> None:
        dialect = sqlite if self.is_sqlite else postgresql
        stmt = dialect.insert(T)
        # A touch planned again (resumed after a reply, retried after a failure) keeps its
        # row and Message-ID; one already handed over keeps that state (it may have gone out).
        keep = stmt.excluded
        stmt = stmt.on_conflict_do_update(
            index_elements=["enrollment_id", "step_id"],
            set_={"state": text("CASE WHEN touches.state IN ('handed_over', 'accepted') "
                                "THEN touches.state ELSE excluded.state END"),
                  "planned_at": keep.planned_at, "subject": keep.subject,
                  "mailbox": keep.mailbox, "touch_number": keep.touch_number})
        s.execute(stmt, rows)

    def _apply_changes(self, s: Any, changes: Sequence[EnrollmentChange], now: datetime) -> None:
        for c in changes:
            values: dict[str, Any] = {"updated_at": now}
            for key in ("next_step", "status", "last_touch_at", "attempts"):
                if getattr(c, key) is not None:
                    values[key] = getattr(c, key)
            values["next_due_at"] = c.next_due_at
            values["status_reason"] = c.reason
            if c.release:
                values.update(claimed_by=None, claimed_until=None)
            if c.status is not None:
                old = s.scalar(select(E.status).where(E.id == c.enrollment_id))
                if old != c.status:
                    s.execute(insert(m.StatusChange).values(
                        enrollment_id=c.enrollment_id, lead_id=c.lead_id, old=old, new=c.status,
                        reason=c.reason, at=now))
            s.execute(update(E).where(E.id == c.enrollment_id).values(**values))
            if c.on_finish:
                self._join(s, c.lead_id, c.on_finish, c.on_finish_due, now)

    def _join(self, s: Any, lead_id: int, campaign: str, due: datetime | None,
              now: datetime) -> None:
        taken = s.scalar(select(E.id).where(E.lead_id == lead_id, E.campaign == campaign,
                                            E.status.in_(("active", "waiting", "paused"))))
        if taken:
            return
        new_id = s.scalar(insert(E).values(
            lead_id=lead_id, campaign=campaign, status="active", next_step=0, next_due_at=due,
            enrolled_at=now, priority=0, attempts=0, updated_at=now).returning(E.id))
        s.execute(insert(m.StatusChange).values(enrollment_id=new_id, lead_id=lead_id, old=None,
                                                new="active", reason="joined from on_finish",
                                                at=now))

    # --- the per-mail ledger -------------------------------------------------------------------

    def record(self, worker_id: str, outcomes: Sequence[Outcome],
               hand_over: Sequence[str]) -> set[str]:
        """One durable step of the ledger: record the answers of finished mails, then mark the
        next mails handed over. Returns the message ids that may be handed over (a mail whose
        enrolment lost its claim meanwhile, say to a reply, is withdrawn instead)."""
        now = self.now()
        allowed: set[str] = set()
        with self.session() as s:
            for o in outcomes:
                self._record_outcome(s, worker_id, o, now)
            for message_id in hand_over:
                claim_held = exists().where(E.id == T.enrollment_id, E.claimed_by == worker_id,
                                            E.status.in_(DUE))
                result = s.execute(update(T).where(
                    T.message_id == message_id, T.state.in_(("planned", "handed_over")),
                    claim_held).values(state="handed_over", handed_at=now)
                    .execution_options(synchronize_session=False))
                if result.rowcount:  # type: ignore[attr-defined]
                    allowed.add(message_id)
                else:
                    s.execute(update(T).where(T.message_id == message_id, T.state == "planned")
                              .values(state="cancelled")
                              .execution_options(synchronize_session=False))
        return allowed

    def _record_outcome(self, s: Any, worker_id: str, o: Outcome, now: datetime) -> None:
        if o.state == "deferred":
            s.execute(update(T).where(T.message_id == o.message_id).values(
                smtp_code=o.code, smtp_response=o.response[:2000])
                .execution_options(synchronize_session=False))
        else:
            s.execute(update(T).where(T.message_id == o.message_id).values(
                state=o.state, accepted_at=now if o.state == "accepted" else None,
                smtp_code=o.code, smtp_response=o.response[:2000])
                .execution_options(synchronize_session=False))
        c = o.change
        if c is None:
            return
        if o.state == "accepted":
            # The step is done whatever happened meanwhile (a reply may have stopped the
            # enrolment); the schedule and status move only while this worker holds the claim.
            s.execute(update(E).where(E.id == c.enrollment_id).values(
                next_step=c.next_step, last_touch_at=now, attempts=0, updated_at=now)
                .execution_options(synchronize_session=False))
            c.last_touch_at, c.next_step = now, None
            if c.next_due_at is not None and c.basis_at is not None and now > c.basis_at:
                # A wait counts from when the mail was actually accepted, not planned.
                c.next_due_at += now - c.basis_at
        held = s.scalar(select(E.status).where(E.id == c.enrollment_id, E.claimed_by == worker_id))
        if held is not None:
            self._apply_changes(s, [c], now)
