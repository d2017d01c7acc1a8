"""Sending state: claims with leases, the planned -> handed over -> accepted ledger, caps.

Claims use ``FOR UPDATE SKIP LOCKED`` on PostgreSQL; SQLite has one worker (file lock), so
its claims need no row locks. A claim is the worker's right to act on an enrolment: anything
that changes the enrolment meanwhile (a reply, a pause) drops the claim, and a mail is only
handed over while its enrolment is still claimed by this worker.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DBAPIError, OperationalError

from worker.adapters.db import models as m
from worker.adapters.db import sql
from worker.adapters.db.accepted import AcceptedRows, fast
from worker.adapters.db.base import Room
from worker.adapters.db.ledger_events import (
    completed_events,
    joined_events,
    known_tasks,
    mail_events,
    task_events,
)
from worker.adapters.db.outcomes import record_outcomes
from worker.adapters.db.raw import RawSQL
from worker.domain.model import DUE_STATUSES, Lead
from worker.domain.send_rows import Claimed, ClaimRow, EnrollmentChange, Outcome, PlannedTouch
from worker.domain.sequence import DueItem, PriorTouch
from worker.errors import StoreError

DUE = [s.value for s in DUE_STATUSES]
LEAD_FIELDS = ("id", "email", "first_name", "last_name", "company", "title", "phone", "timezone",
               "country", "owner", "tags", "fields")
E, T = m.Enrollment, m.Touch
# Written as in the partial indexes' WHERE clauses: SQLite uses a partial index only when the
# query repeats its condition literally (a bound "status IN (?, ?)" scans the whole table).
_DUE = text(m.DUE_SQL)
_PRIORITY = text("priority > 0")
# A claim sets claimed_by and claimed_until together, and every release clears both: naming
# claimed_until finds a worker's claims in the small partial index of claimed enrolments
# (ix_enrollments_claimed) instead of reading every enrolment at each heartbeat.
_CLAIMED = text("claimed_until IS NOT NULL")


class SendingRows(Room):
    """Claims of due enrolments, the plan and the per-mail ledger."""

    def release_all_claims(self) -> int:
        """A starting SQLite worker is the only one: nothing is claimed by anyone alive."""
        with self.session() as s:
            result = s.execute(update(E).where(E.claimed_by.is_not(None))
                               .values(claimed_by=None, claimed_until=None))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def release_claims(self, worker_id: str, enrollment_ids: Sequence[int] | None = None) -> int:
        """Give up this worker's claims (all, or the ones listed); returns how many."""
        with self.session() as s:
            query = update(E).where(_CLAIMED, E.claimed_by == worker_id)
            if enrollment_ids is not None:
                query = query.where(E.id.in_(list(enrollment_ids)))
            result = s.execute(query.values(claimed_by=None, claimed_until=None))
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def renew_claims(self, worker_id: str, lease_s: float) -> None:
        """Extend this worker's leases. Rows the ledger holds locked right now are skipped
        (they are being finished), so the two never wait on each other."""
        until = self.now() + timedelta(seconds=lease_s)
        mine = select(E.id).where(_CLAIMED, E.claimed_by == worker_id)
        if not self.is_sqlite:
            mine = mine.with_for_update(skip_locked=True)
        with self.session() as s:
            s.execute(update(E).where(E.id.in_(mine.scalar_subquery()))
                      .values(claimed_until=until).execution_options(synchronize_session=False))

    def next_due_at(self) -> datetime | None:
        """The earliest due time of any open enrolment that is free to claim (uses the
        partial index). An enrolment under a live claim (this worker's own mail in flight,
        or another worker's) is not due for anyone: counting it kept the loop from sleeping
        while mail waited on a slow or throttling server."""
        now = self.now()
        with self.session() as s:
            return s.scalar(select(func.min(E.next_due_at)).where(
                _DUE, or_(E.claimed_until.is_(None), E.claimed_until < now)))

    def due_backlog(self, now: datetime) -> tuple[int, datetime | None]:
        """How many enrolments are due now, and the oldest due time."""
        with self.session() as s:
            row = s.execute(select(func.count(), func.min(E.next_due_at)).where(
                _DUE, E.next_due_at <= now)).one()
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
        """Claim up to ``limit`` due enrolments, contact requests first, with what the planner
        needs to know of them."""
        with self.session() as s:
            return self._load_claimed(s, self._claim(s, worker_id, now, limit, lease_s))

    def claim_rows(self, worker_id: str, now: datetime, limit: int,
                   lease_s: float) -> list[ClaimRow]:
        """Only the claim (one short write); ``load_claimed`` reads the rest, possibly in
        another process."""
        with self.session() as s:
            return self._claim(s, worker_id, now, limit, lease_s)

    def load_claimed(self, rows: Sequence[ClaimRow]) -> list[Claimed]:
        """The leads and prior touches of claimed enrolments (reads only)."""
        if not rows:
            return []
        with self.session() as s:
            return self._load_claimed(s, rows)

    def _claim(self, s: Any, worker_id: str, now: datetime, limit: int,
               lease_s: float) -> list[ClaimRow]:
        until = now + timedelta(seconds=lease_s)
        claimable = and_(_DUE, E.next_due_at <= now,
                         or_(E.claimed_until.is_(None), E.claimed_until < now))
        claimed: list[ClaimRow] = []
        for first in (True, False):
            room = limit - len(claimed)
            if room <= 0:
                break
            pick = select(E.id).where(claimable)
            pick = (pick.where(_PRIORITY).order_by(E.priority.desc(), E.next_due_at)
                    if first else pick.order_by(E.next_due_at))
            pick = pick.limit(room)
            if not self.is_sqlite:
                pick = pick.with_for_update(skip_locked=True)
            rows = s.execute(update(E).where(E.id.in_(pick.scalar_subquery()))
                             .values(claimed_by=worker_id, claimed_until=until)
                             .returning(E.id, E.lead_id, E.campaign, E.status, E.next_step,
                                        E.next_due_at, E.enrolled_at, E.last_touch_at,
                                        E.priority, E.attempts)
                             .execution_options(synchronize_session=False)).all()
            claimed.extend(ClaimRow(*r) for r in rows)
        return claimed

    @staticmethod
    def _load_claimed(s: Any, claimed: Sequence[ClaimRow]) -> list[Claimed]:
        if not claimed:
            return []
        ids = [r.id for r in claimed]
        # Plain rows, not ORM objects: this runs for every batch of the busiest path.
        lead_cols = [getattr(m.Lead, c) for c in LEAD_FIELDS]
        leads = {r.id: Lead(**{c: getattr(r, c) for c in LEAD_FIELDS[:-2]},
                            tags=tuple(r.tags or ()), fields=dict(r.fields or {}))
                 for r in s.execute(select(*lead_cols).where(
                     m.Lead.id.in_({r.lead_id for r in claimed})))}
        prior: dict[int, list[PriorTouch]] = defaultdict(list)
        # Sorted here, not by ORDER BY: SQLite would then scan touches instead of using
        # the (enrollment_id, step_id) index.
        rows = sorted(s.execute(select(T.id, T.enrollment_id, T.step_id, T.kind, T.state,
                                       T.message_id, T.subject, T.accepted_at, T.created_at)
                                .where(T.enrollment_id.in_(ids))), key=lambda r: r.id)
        for t in rows:
            prior[t.enrollment_id].append(PriorTouch(t.step_id, t.kind, t.state, t.message_id,
                                                     t.subject, t.accepted_at or t.created_at))
        return [Claimed(DueItem(r.id, leads[r.lead_id], r.status, r.next_step, r.next_due_at,
                                r.enrolled_at, r.last_touch_at, tuple(prior[r.id]),
                                r.attempts or 0),
                        r.campaign, r.priority) for r in claimed if r.lead_id in leads]

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
        with self.engine.begin() as s:
            emails_by_box: dict[str, list[PlannedTouch]] = defaultdict(list)
            for t in touches:
                if t.kind == "email" and t.mailbox:
                    emails_by_box[t.mailbox].append(t)
            for box, items in ((caps and emails_by_box.items()) or ()):
                if box not in caps:  # type: ignore[operator]
                    continue
                self._lock(s, f"cap:{box}", now)
                hour, day, first = self._usage(s, box, now)
                allowed = caps[box](hour, day, first, now)  # type: ignore[index]
                for extra in items[max(allowed, 0):]:
                    refused.add(extra.message_id or "")
            kept = [t for t in touches if t.message_id not in refused or t.kind != "email"]
            known = known_tasks(s, kept) if self.emitting else set()
            if kept:
                self._upsert_touches(s, [self._touch_values(t, now) for t in kept])
                self.emit(s, lambda: task_events(s, kept, known, now))
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

    def _upsert_touches(self, conn: Any, rows: list[dict[str, Any]]) -> None:
        """One executemany on the raw connection (a batch of up to a few hundred rows).
        A touch planned again (resumed after a reply, retried after a failure) keeps its row
        and Message-ID; one already handed over keeps that state (it may have gone out)."""
        ts = self._raw.ts
        for row in rows:
            for key in ("planned_at", "due_at", "created_at"):
                row[key] = ts(row[key])
        cur = conn.connection.cursor()
        try:
            cur.executemany(self._raw.sql(sql.RAW_UPSERT_TOUCH), rows)
        finally:
            cur.close()

    def _apply_changes(self, conn: Any, changes: Sequence[EnrollmentChange],
                       now: datetime) -> None:
        """Apply enrolment changes with prebuilt statements (one executemany)."""
        if not changes:
            return
        moving = [c.enrollment_id for c in changes if c.status is not None]
        old: dict[int, str] = {}
        if len(moving) == 1:
            old = {moving[0]: conn.execute(sql.STATUS_OF, {"eid": moving[0]}).scalar()}
        elif moving:
            old = dict(conn.execute(select(E.id, E.status).where(E.id.in_(moving))).all())
        conn.execute(sql.CHANGE, [{
            "eid": c.enrollment_id, "next_step": c.next_step, "status": c.status,
            "last_touch_at": c.last_touch_at, "attempts": c.attempts,
            "next_due_at": c.next_due_at, "reason": c.reason, "now": now,
            "release": 1 if c.release else 0} for c in changes])
        changed = [{"eid": c.enrollment_id, "lead_id": c.lead_id, "old": old.get(c.enrollment_id),
                    "new": c.status, "reason": c.reason, "at": now}
                   for c in changes if c.status is not None and old.get(c.enrollment_id) != c.status]
        if changed:
            conn.execute(sql.STATUS_CHANGE, changed)
            ends = [c for c in changes if c.status == "completed" and old.get(c.enrollment_id) != c.status]
            self.emit(conn, lambda: completed_events(conn, ends, now))
        for c in changes:
            if c.on_finish:
                self._join(conn, c.lead_id, c.on_finish, c.on_finish_due, now)

    def _join(self, conn: Any, lead_id: int, campaign: str, due: datetime | None,
              now: datetime) -> None:
        if conn.execute(sql.OPEN_IN_CAMPAIGN, {"lead_id": lead_id, "campaign": campaign}).first():
            return
        new_id = conn.execute(sql.JOIN, {"lead_id": lead_id, "campaign": campaign, "due": due,
                                         "now": now}).scalar_one()
        conn.execute(sql.STATUS_CHANGE, {"eid": new_id, "lead_id": lead_id, "old": None,
                                         "new": "active", "reason": "joined from on_finish",
                                         "at": now})
        self.emit(conn, lambda: joined_events(conn, lead_id, campaign, now))

    # --- the per-mail ledger -------------------------------------------------------------------

    def record(self, worker_id: str, outcomes: Sequence[Outcome],
               hand_over: Sequence[str]) -> set[str]:
        """One durable step of the ledger: record the answers of finished mails, then mark the
        next mails handed over. Returns the message ids that may be handed over (a mail whose
        enrolment lost its claim meanwhile, say to a reply, is withdrawn instead).

        The common case (accepted, the enrolment moves on or finishes) is written for the
        whole group with a few raw executemany statements (``accepted.py``); the rest (a
        refusal, a deferral, a campaign to join) with a few more (``outcomes.py``): no
        statement per mail."""
        now = self.now()
        allowed: set[str] = set()
        simple = [o for o in outcomes if fast(o)]
        rest = [o for o in outcomes if not fast(o)]
        raw = self._raw
        try:
            with self.engine.begin() as conn:
                cur = conn.connection.cursor()
                try:
                    if simple:
                        ends = self._accepted.record(cur, worker_id, simple, now, self.emitting)
                        if ends:
                            self.emit(conn, lambda: completed_events(conn, ends, now))
                    if rest:
                        record_outcomes(conn, worker_id, rest, now, self._apply_changes)
                    if hand_over:
                        marks, params = raw.in_list("m", list(hand_over))
                        raw.execute_fresh(cur, raw.sql(sql.RAW_HANDOVER.format(marks=marks)),
                                          {**params, "now": raw.ts(now), "worker": worker_id})
                        allowed = {row[0] for row in cur.fetchall()}
                        withdrawn = [mid for mid in hand_over if mid not in allowed]
                        if withdrawn:
                            marks, params = raw.in_list("m", withdrawn)
                            cur.execute(raw.sql(sql.RAW_WITHDRAW.format(marks=marks)), params)
                            cur.execute(raw.sql(sql.RAW_RELEASE_WITHDRAWN.format(marks=marks)),
                                        {**params, "worker": worker_id})
                finally:
                    cur.close()
                self.emit(conn, lambda: mail_events(conn, outcomes, now))
        except (OperationalError, DBAPIError) as exc:
            raise StoreError(f"database error: {exc}") from exc
        except Exception as exc:  # a raw driver error (sqlite3 / psycopg) carries no wrapper
            if exc.__class__.__module__.split(".")[0] in ("sqlite3", "psycopg"):
                raise StoreError(f"database error: {exc}") from exc
            raise
        return allowed

    @cached_property
    def _raw(self) -> RawSQL:
        return RawSQL(self.engine.dialect.name)

    @cached_property
    def _accepted(self) -> AcceptedRows:
        return AcceptedRows(self._raw)
