"""The database door: leads, suppression, events and enrolments (SQLAlchemy 2).

One room of the database adapter over the shared ``Connection`` (``base.py``); sending
(claims, ledger) lives in ``ledger.py``, inbound mail in ``inbox_store.py``. Driver errors
are translated into StoreError at this boundary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from worker.adapters.db import models as m
from worker.adapters.db.base import Room
from worker.adapters.db.webhook_store import leads_in
from worker.domain import webhooks as wh
from worker.domain.leads import LeadInput, canonical_domain, spellings
from worker.domain.model import LEAD_COLUMNS, OPEN_STATUSES, EnrollmentStatus, Lead
from worker.errors import NotFound, UserError

OPEN = [s.value for s in OPEN_STATUSES]


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert did to one lead (imported, updated, unchanged)."""
    lead_id: int
    outcome: str  # imported | updated | unchanged


def to_domain(row: m.Lead) -> Lead:
    """A database row as the domain's immutable Lead."""
    return Lead(email=row.email, id=row.id, first_name=row.first_name, last_name=row.last_name,
                company=row.company, title=row.title, phone=row.phone, timezone=row.timezone,
                country=row.country, owner=row.owner, tags=tuple(row.tags or ()),
                fields=dict(row.fields or {}))


class LeadRows(Room):
    """Leads, suppression, events, enrolments."""

    # --- leads -----------------------------------------------------------------------------

    def upsert_leads(self, items: Sequence[tuple[LeadInput, str | None]],
                     consent_at: datetime | None = None) -> list[UpsertResult]:
        """Insert or update leads by address in one transaction. Tags are merged, fields
        are merged (new values win), empty values never erase stored ones."""
        now = self.now()
        outcome: dict[str, str] = {}
        with self.session() as s:
            emails = [inp.email for inp, _ in items]
            existing = {row.email: row for row in
                        s.scalars(select(m.Lead).where(m.Lead.email.in_(emails)))}
            fresh: dict[str, dict[str, Any]] = {}
            changed: dict[str, list[str]] = {}
            sources = {inp.email: source for inp, source in items}
            for inp, source in items:
                row = existing.get(inp.email)
                if row is None:
                    if inp.email not in fresh:
                        fresh[inp.email] = {
                            "email": inp.email, "tags": inp.tags, "fields": inp.fields,
                            "source": source, "consent_at": consent_at or now, "created_at": now,
                            "updated_at": now, **{k: inp.columns.get(k) for k in LEAD_COLUMNS
                                                  if k != "email"}}
                        outcome[inp.email] = "imported"
                    continue
                names = self._merge(row, inp, now)
                if names:
                    changed.setdefault(inp.email, []).extend(names)
                outcome[inp.email] = "updated" if names else outcome.get(inp.email, "unchanged")
            ids = {row.email: row.id for row in existing.values()}
            if fresh:
                for lead_id, email in s.execute(insert(m.Lead).returning(m.Lead.id, m.Lead.email),
                                                list(fresh.values())):
                    ids[email] = lead_id
            self.emit(s, lambda: [
                *(wh.lead_created(Lead(**{k: v for k, v in fresh[e].items() if k in LEAD_COLUMNS},
                                       id=ids[e]), now, sources[e]) for e in fresh),
                *(wh.lead_updated(to_domain(existing[e]), now, set(names))
                  for e, names in changed.items())])
        return [UpsertResult(ids[inp.email], outcome[inp.email]) for inp, _ in items]

    @staticmethod
    def _merge(row: m.Lead, inp: LeadInput, now: datetime) -> list[str]:
        """Merge ``inp`` into ``row``; returns the names of what changed (``lead.updated``)."""
        changed: list[str] = []
        for key, value in inp.columns.items():
            if value is not None and getattr(row, key) != value:
                setattr(row, key, value)
                changed.append(key)
        tags = sorted(set(row.tags or []) | set(inp.tags))
        if tags != sorted(row.tags or []):
            row.tags = tags
            changed.append("tags")
        fields = {**(row.fields or {}), **{k: v for k, v in inp.fields.items() if v is not None}}
        if fields != (row.fields or {}):
            row.fields = fields
            changed.append("fields")
        if changed:
            row.updated_at = now
        return changed

    def lead_by_email(self, email: str) -> Lead | None:
        """The lead with this address, or None."""
        with self.session() as s:
            row = s.scalar(select(m.Lead).where(m.Lead.email == email.lower()))
            return to_domain(row) if row else None

    def lead_by_id(self, lead_id: int) -> Lead | None:
        """The lead with this id, or None."""
        with self.session() as s:
            row = s.get(m.Lead, lead_id)
            return to_domain(row) if row else None

    def lead_ids_by_domain(self, domain: str) -> list[int]:
        """The ids of leads at a domain (any spelling)."""
        with self.session() as s:
            return list(s.scalars(select(m.Lead.id).where(m.Lead.email.like(f"%@{domain}"))))

    def set_lead_fields(self, lead_id: int, fields: dict[str, Any]) -> None:
        """Set fields on a lead."""
        with self.session() as s:
            row = s.get(m.Lead, lead_id)
            if row is None:
                return
            merged = {**(row.fields or {}), **fields}
            columns = {k: v for k, v in fields.items() if k in LEAD_COLUMNS and k != "email"}
            for key, value in columns.items():
                setattr(row, key, value)
                merged.pop(key, None)
            row.fields = merged
            row.updated_at = self.now()

    # --- suppression -------------------------------------------------------------------------

    def suppression_for(self, email: str) -> str | None:
        """The reason an address is suppressed (its own entry or its domain's), else None.
        Both spellings of an internationalised domain match (Unicode and ``xn--``)."""
        forms = spellings(email)
        domains = [f.rpartition("@")[2] for f in forms]
        with self.session() as s:
            row = s.scalar(select(m.Suppression.reason).where(or_(
                m.Suppression.email_hash.in_([self.email_hash(f) for f in forms]),
                m.Suppression.domain.in_(domains))).limit(1))
            return row

    def suppressed_among(self, emails: Sequence[str]) -> dict[str, str]:
        """The suppressed addresses among ``emails`` with their reasons (one query each for
        addresses and domains; both spellings of a domain)."""
        if not emails:
            return {}
        hashes: dict[str, list[str]] = {}
        domains: dict[str, list[str]] = {}
        for e in emails:
            for form in spellings(e):
                hashes.setdefault(self.email_hash(form), []).append(e)
                domains.setdefault(form.rpartition("@")[2], []).append(e)
        out: dict[str, str] = {}
        with self.session() as s:
            for h, reason in s.execute(select(m.Suppression.email_hash, m.Suppression.reason)
                                       .where(m.Suppression.email_hash.in_(list(hashes)))):
                for e in hashes.get(h or "", []):
                    out[e] = reason
            for d, reason in s.execute(select(m.Suppression.domain, m.Suppression.reason)
                                       .where(m.Suppression.domain.in_(list(domains)))):
                for e in domains.get(d or "", []):
                    out.setdefault(e, reason)
        return out

    def suppressed_count(self) -> int:
        """How many addresses are suppressed."""
        with self.session() as s:
            return int(s.scalar(select(func.count()).select_from(m.Suppression)) or 0)

    def add_suppression(self, email: str | None, reason: str, source: str | None,
                        domain: str | None = None, keep_address: bool = True, *,
                        how: str | None = None) -> bool:
        """Add an address or a domain to the suppression list; False if already there.
        The address's lead, if any, is reported as ``lead.unsubscribed`` (with ``how``: link,
        reply, command, api) or ``lead.suppressed``; an erasure reports ``lead.erased`` when
        the lead is deleted."""
        now = self.now()
        values = self._suppression(email, reason, source, domain, keep_address, now)
        try:
            with self.session() as s:
                s.execute(insert(m.Suppression).values(**values))
                if "email_hash" in values and reason != "erased":
                    canonical = spellings(email or "")[0].lower()
                    self.emit(s, lambda: self._suppressed_events(
                        s.scalar(select(m.Lead).where(m.Lead.email == canonical)),
                        reason, how, now))
            return True
        except IntegrityError:
            return False

    def suppress_lead(self, lead_id: int, reason: str, status: EnrollmentStatus, why: str, *,
                      how: str | None = None) -> tuple[Lead, bool, list[tuple[int, str]]] | None:
        """Suppress a lead's address, close its open enrolments (to ``status``, for ``why``)
        and write the event, all in one transaction: a crash cannot leave a suppressed lead
        with open enrolments, nor an event for half a change. Returns the lead, whether the
        address was new on the list, and the (enrollment id, campaign) closed; None if there
        is no such lead. Safe to repeat."""
        try:
            return self._suppress_lead(lead_id, reason, status, why, how)
        except IntegrityError:  # a concurrent transaction listed the address meanwhile
            return self._suppress_lead(lead_id, reason, status, why, how)

    def _suppress_lead(self, lead_id: int, reason: str, status: EnrollmentStatus, why: str,
                       how: str | None) -> tuple[Lead, bool, list[tuple[int, str]]] | None:
        now = self.now()
        with self.session() as s:
            row = s.get(m.Lead, lead_id)
            if row is None:
                return None
            values = self._suppression(row.email, reason, why, None, True, now)
            added = s.scalar(select(m.Suppression.id).where(
                m.Suppression.email_hash == values["email_hash"])) is None
            if added:
                s.execute(insert(m.Suppression).values(**values))
                self.emit(s, lambda: self._suppressed_events(row, reason, how, now))
            closed = _close(s, [lead_id], status, why, OPEN, None, now)
            return to_domain(row), added, closed

    def _suppression(self, email: str | None, reason: str, source: str | None,
                     domain: str | None, keep_address: bool, now: datetime) -> dict[str, Any]:
        values: dict[str, Any] = {"reason": reason, "source": source, "created_at": now}
        if domain:
            values["domain"] = canonical_domain(domain)
        else:
            assert email is not None
            email = spellings(email)[0]  # the canonical spelling (Unicode domain)
            values["email_hash"] = self.email_hash(email)
            values["email"] = email if keep_address else None
        return values

    @staticmethod
    def _suppressed_events(row: m.Lead | None, reason: str, how: str | None,
                           now: datetime) -> list[wh.WebhookEvent]:
        if row is None:
            return []
        lead = to_domain(row)
        if reason == "unsubscribed":
            return [wh.lead_unsubscribed(lead, now, how or "command")]
        return [wh.lead_suppressed(lead, now, reason)]

    def close_enrollments(self, lead_ids: Sequence[int], status: EnrollmentStatus, reason: str,
                          from_statuses: Sequence[str] = tuple(OPEN), campaign: str | None = None
                          ) -> list[tuple[int, str]]:
        """Move the lead's open enrolments to ``status``, dropping any claim so a planned
        mail is not handed over. Returns (enrollment id, campaign) of those changed."""
        with self.session() as s:
            return _close(s, lead_ids, status, reason, from_statuses, campaign, self.now())

    # --- events --------------------------------------------------------------------------------

    def add_event(self, lead_id: int, kind: str, fields: dict[str, Any],
                  source: str | None) -> tuple[int, list[str]]:
        """Record an interaction; returns (count of interactions, their types)."""
        now = self.now()
        with self.session() as s:
            s.add(m.Event(lead_id=lead_id, type=kind, fields=fields, source=source, at=now))
            s.flush()
            types = list(s.scalars(select(m.Event.type).where(m.Event.lead_id == lead_id)
                                   .order_by(m.Event.id)))
        return len(types), types

    # --- enrolments ----------------------------------------------------------------------------

    def enroll(self, lead_id: int, campaign: str, next_due_at: datetime | None,
               priority: int = 0, reason: str = "enrolled") -> tuple[int, bool]:
        """Enrol a lead unless it already has an open enrolment in that campaign.
        Returns (enrollment id, created)."""
        now = self.now()
        with self.session() as s:
            found = s.scalar(select(m.Enrollment.id).where(
                m.Enrollment.lead_id == lead_id, m.Enrollment.campaign == campaign,
                m.Enrollment.status.in_(OPEN)))
            if found:
                if priority:
                    s.execute(update(m.Enrollment).where(m.Enrollment.id == found)
                              .values(priority=priority))
                return found, False
            row = m.Enrollment(lead_id=lead_id, campaign=campaign, status="active", next_step=0,
                               next_due_at=next_due_at, enrolled_at=now, priority=priority,
                               updated_at=now)
            s.add(row)
            s.flush()
            s.add(m.StatusChange(enrollment_id=row.id, lead_id=lead_id, old=None, new="active",
                                 reason=reason, at=now))
            self.emit(s, lambda: [wh.lead_enrolled(lead, now, campaign)
                                  for lead in leads_in(s, [lead_id]).values()])
            return row.id, True

    def enrollments_of(self, lead_id: int, campaign: str | None = None,
                       statuses: Sequence[str] | None = None) -> list[m.Enrollment]:
        """A lead's enrolments."""
        with self.session() as s:
            query = select(m.Enrollment).where(m.Enrollment.lead_id == lead_id)
            if campaign:
                query = query.where(m.Enrollment.campaign == campaign)
            if statuses:
                query = query.where(m.Enrollment.status.in_(list(statuses)))
            return list(s.scalars(query.order_by(m.Enrollment.id)))

    def set_enrollment(self, enrollment_id: int, *, status: str, reason: str,
                       next_due_at: datetime | None = None, **extra: Any) -> None:
        """Change one enrolment's status (by hand or by an inbound message)."""
        now = self.now()
        with self.session() as s:
            row = s.get(m.Enrollment, enrollment_id, with_for_update=True)
            if row is None:
                return
            old = row.status
            row.status, row.status_reason, row.next_due_at = status, reason, next_due_at
            row.claimed_by = row.claimed_until = None
            row.updated_at = now
            for key, value in extra.items():
                setattr(row, key, value)
            if old != status:
                s.add(m.StatusChange(enrollment_id=row.id, lead_id=row.lead_id, old=old,
                                     new=status, reason=reason, at=now))

    def prioritize(self, enrollment_ids: Sequence[int]) -> None:
        """Move enrolments to the front of the queue. Nothing else changes: a claim held by a
        worker stays (dropping it would let the step be planned a second time)."""
        if enrollment_ids:
            with self.session() as s:
                s.execute(update(m.Enrollment).where(m.Enrollment.id.in_(list(enrollment_ids)))
                          .values(priority=1, updated_at=self.now()))

    def finish_task(self, touch_id: int, note: str | None, now: datetime) -> m.Touch:
        """Mark an open task done (with the owner's note); NotFound or UserError otherwise."""
        with self.session() as s:
            touch = s.get(m.Touch, touch_id)
            if touch is None or touch.kind != "task":
                raise NotFound(f"no task {touch_id}")
            if touch.state == "done":
                raise UserError(f"task {touch_id} is already done")
            touch.state, touch.done_at, touch.note = "done", now, note or touch.note
            self.emit(s, lambda: [wh.task_done(lead, now, touch.campaign, touch.step_id,
                                               touch.id, touch.note)
                                  for lead in leads_in(s, [touch.lead_id]).values()])
        return touch

    def delete_lead(self, lead_id: int) -> None:
        """Erase a lead and everything about it (the suppression hash stays)."""
        now = self.now()
        with self.session() as s:
            email = s.scalar(select(m.Lead.email).where(m.Lead.id == lead_id))
            # Erasure leaves nothing behind: the lead's outbox rows (they carry its address)
            # go too, and the one event written tells only the address's keyed hash.
            s.execute(delete(m.WebhookOutbox).where(m.WebhookOutbox.lead_id == lead_id))
            if email is not None:
                self.emit(s, lambda: [wh.lead_erased(self.email_hash(email), now)])
            s.execute(update(m.Inbound).where(m.Inbound.lead_id == lead_id).values(
                excerpt=None, subject=None, from_addr=None, lead_id=None, touch_id=None))
            for table in (m.StatusChange, m.Event, m.SoftBounce, m.Touch):
                s.execute(delete(table).where(table.lead_id == lead_id))
            s.execute(delete(m.Enrollment).where(m.Enrollment.lead_id == lead_id))
            s.execute(delete(m.Lead).where(m.Lead.id == lead_id))


def _close(s: Any, lead_ids: Sequence[int], status: EnrollmentStatus, reason: str,
           from_statuses: Sequence[str], campaign: str | None,
           now: datetime) -> list[tuple[int, str]]:
    """``close_enrollments`` inside the caller's session."""
    query = select(m.Enrollment.id, m.Enrollment.campaign, m.Enrollment.status,
                   m.Enrollment.lead_id).where(
        m.Enrollment.lead_id.in_(list(lead_ids)),
        m.Enrollment.status.in_(list(from_statuses)))
    if campaign:
        query = query.where(m.Enrollment.campaign == campaign)
    rows = s.execute(query.with_for_update()).all()
    if not rows:
        return []
    ids = [r.id for r in rows]
    s.execute(update(m.Enrollment).where(m.Enrollment.id.in_(ids)).values(
        status=status.value, status_reason=reason, claimed_by=None, claimed_until=None,
        next_due_at=None, updated_at=now))
    s.execute(insert(m.StatusChange), [
        {"enrollment_id": r.id, "lead_id": r.lead_id, "old": r.status, "new": status.value,
         "reason": reason, "at": now} for r in rows])
    s.execute(update(m.Touch).where(m.Touch.enrollment_id.in_(ids),
                                    m.Touch.state == "planned").values(state="cancelled"))
    return [(r.id, r.campaign) for r in rows]
