"""Use-cases of intake and by-hand control: enrol, record an event, pause, resume, cancel,
unsubscribe, finish a task. Sending lives in ``sending.py``, inbound mail in ``inbox.py``."""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from worker.adapters.db import models as m
from worker.domain import schedule, sequence
from worker.domain.leads import LeadInput, parse_lead
from worker.domain.model import EnrollmentStatus, SuppressionReason
from worker.errors import LeadError, LimitError, NotFound, Problem, UserError
from worker.logs import mask

if TYPE_CHECKING:
    from worker.adapters.db import Database
    from worker.app import App

log = logging.getLogger(__name__)
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


@dataclass
class EnrollResult:
    lead_id: int
    outcome: str                      # imported | updated | unchanged
    enrolled: list[str] = field(default_factory=list)
    already: list[str] = field(default_factory=list)


class Service:
    def __init__(self, app: App) -> None:
        self.app = app

    @property
    def db(self) -> Database:
        return self.app.db

    # --- intake --------------------------------------------------------------------------------

    def refuse_suppressed(self, email: str) -> None:
        reason = self.db.suppression_for(email)
        if reason:
            raise LeadError("email", f"suppressed ({reason}): this address is never mailed again")

    def intake(self, data: Mapping[str, Any], campaign: str | None = None,
               tags: list[str] | None = None, source: str | None = None,
               priority: int = 0) -> EnrollResult:
        """Create or update a lead and enrol it (explicit campaign, or by its tags)."""
        lead_in = parse_lead(data)
        if tags:
            lead_in.tags = sorted(set(lead_in.tags) | {t.lower() for t in tags})
        self.refuse_suppressed(lead_in.email)
        if campaign:
            self.app.catalog.get(campaign)  # refuse an unknown campaign before storing anything
        upsert = self.db.upsert_leads([(lead_in, source)])[0]
        result = EnrollResult(upsert.lead_id, upsert.outcome)
        for slug in self.campaigns_for(lead_in, campaign):
            enrolled = self.enroll(upsert.lead_id, slug, priority=priority)
            (result.enrolled if enrolled else result.already).append(slug)
        return result

    def campaigns_for(self, lead_in: LeadInput, campaign: str | None) -> list[str]:
        if campaign:
            return [campaign]
        tags = set(lead_in.tags)
        return [slug for slug, camp in sorted(self.app.catalog.campaigns.items())
                if tags & set(camp.enroll_tags)]

    def enroll(self, lead_id: int, slug: str, priority: int = 0, reason: str = "enrolled") -> bool:
        """Enrol now; wakes the worker when the first step is due at once. False if the lead
        already has an open enrolment in that campaign."""
        camp = self.app.catalog.get(slug)
        lead = self.db.lead_by_id(lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {lead_id}")
        now = self.app.clock.now()
        due = sequence.first_due(camp, lead, now)
        _, created = self.db.enroll(lead_id, slug, due, priority=priority, reason=reason)
        if created:
            log.info("action=enrolled campaign=%s lead=%s due_at=%s", slug, mask(lead.email),
                     due.isoformat() if due else "-")
        if self.app.runner is not None and (priority or (due is not None and due <= now)):
            self.app.runner.wake()
        return created

    def record_event(self, email: str, kind: str, fields: Mapping[str, Any],
                     source: str | None = None) -> tuple[int, list[str]]:
        """Record an interaction; store its fields on the lead; enrol where a campaign's
        ``enroll_when`` becomes true. Returns (lead id, campaigns enrolled)."""
        kind = kind.strip().lower()
        if not EVENT_TYPE_RE.match(kind):
            raise LeadError("type", f"not an event type: {kind!r} (letters, digits, _ and -)")
        lead_in = parse_lead({"email": email, "fields": dict(fields)})
        self.refuse_suppressed(lead_in.email)
        lead_id = self.db.upsert_leads([(lead_in, source)])[0].lead_id
        _, types = self.db.add_event(lead_id, kind, lead_in.fields, source)
        contact = kind == "contact_request"
        lead = self.db.lead_by_id(lead_id)
        assert lead is not None
        ctx = sequence.condition_context(lead, types)
        enrolled: list[str] = []
        for slug, camp in sorted(self.app.catalog.campaigns.items()):
            try:
                if camp.enroll_condition is None or not camp.enroll_condition(ctx):
                    continue
            except LimitError as exc:
                self.app.catalog.skip(slug, Problem(exc.template, exc.line, exc.reason))
                continue
            if self.db.enrollments_of(lead_id, slug) and not contact:
                continue  # enrolled once already (open or finished)
            if self.enroll(lead_id, slug, priority=1 if contact else 0,
                           reason=f"enroll_when: {camp.enroll_when}"):
                enrolled.append(slug)
        if contact:
            self._contact_request(lead_id, lead.email, lead.owner)
        return lead_id, enrolled

    def _contact_request(self, lead_id: int, email: str, owner: str | None) -> None:
        self.db.prioritize([row.id for row in self.db.enrollments_of(
            lead_id, statuses=["active", "waiting"]) if not row.priority])
        to = owner or self.app.settings.notify.default_owner
        if to:
            self.db.add_notification("contact_request", to, f"Contact request from {email}",
                                     f"{email} asked to be contacted. Their sequence moved to "
                                     "the front of the queue.\n\n-- Nurture")
        if self.app.runner is not None:
            self.app.runner.wake()

    # --- by hand -------------------------------------------------------------------------------

    def lead_id(self, email: str) -> int:
        lead = self.db.lead_by_email(email.strip().lower())
        if lead is None:
            raise NotFound(f"no lead {email!r}")
        return lead.id

    def pause(self, email: str, campaign: str | None) -> list[str]:
        return self._set(email, campaign, ["active", "waiting"], "paused", "paused by hand")

    def cancel(self, email: str, campaign: str | None) -> list[str]:
        return self._set(email, campaign, ["active", "waiting", "paused"], "cancelled",
                         "cancelled by hand")

    def _set(self, email: str, campaign: str | None, current: list[str], status: str,
             reason: str) -> list[str]:
        lead_id = self.lead_id(email)
        changed = [slug for _, slug in self.db.close_enrollments(
            [lead_id], EnrollmentStatus(status), reason, current, campaign)]
        if not changed:
            raise UserError(f"{email}: no enrolment to {status.rstrip('ed')}"
                            f"{' in ' + campaign if campaign else ''}")
        return changed

    def resume(self, email: str, campaign: str | None) -> list[str]:
        """A paused, replied or failed enrolment goes on from its next step."""
        lead_id = self.lead_id(email)
        lead = self.db.lead_by_id(lead_id)
        assert lead is not None
        self.refuse_suppressed(lead.email)
        now = self.app.clock.now()
        resumed: list[str] = []
        for row in self.db.enrollments_of(lead_id, campaign, ["paused", "replied", "failed"]):
            camp = self.app.catalog.campaigns.get(row.campaign)
            if camp is None:
                continue
            if self.db.enrollments_of(lead_id, row.campaign, ["active", "waiting"]):
                continue
            due = _resume_due(camp, lead.timezone, row, now)
            self.db.set_enrollment(row.id, status="active", reason="resumed by hand",
                                   next_due_at=due)
            resumed.append(row.campaign)
        if not resumed:
            raise UserError(f"{email}: nothing to resume{' in ' + campaign if campaign else ''}")
        if self.app.runner is not None:
            self.app.runner.wake()
        return resumed

    def unsubscribe(self, lead_id: int, source: str) -> bool:
        """Global: the lead gets nothing more from any campaign. False if already done."""
        lead = self.db.lead_by_id(lead_id)
        if lead is None:
            return False
        added = self.db.add_suppression(lead.email, SuppressionReason.UNSUBSCRIBED.value, source)
        closed = self.db.close_enrollments([lead_id], EnrollmentStatus.UNSUBSCRIBED, source)
        if added or closed:
            log.info("action=unsubscribed lead=%s source=%s enrollments=%d", mask(lead.email),
                     source, len(closed))
        return bool(added or closed)

    def complete_task(self, touch_id: int, note: str | None) -> m.Touch:
        now = self.app.clock.now()
        with self.db.session() as s:
            touch = s.get(m.Touch, touch_id)
            if touch is None or touch.kind != "task":
                raise NotFound(f"no task {touch_id}")
            if touch.state == "done":
                raise UserError(f"task {touch_id} is already done")
            touch.state, touch.done_at, touch.note = "done", now, note or touch.note
            enrollment = s.get(m.Enrollment, touch.enrollment_id)
        if enrollment and enrollment.status == "active" and enrollment.next_due_at is None:
            camp = self.app.catalog.campaigns.get(enrollment.campaign)
            lead = self.db.lead_by_id(enrollment.lead_id)
            if camp and lead and enrollment.next_step < len(camp.steps):
                cal = schedule.calendar_for(camp.window, lead.timezone)
                due = sequence.step_due(camp, enrollment.next_step, cal, enrollment.enrolled_at, now)
                self.db.set_enrollment(enrollment.id, status="active", reason=f"task {touch_id} "
                                       "done", next_due_at=due, last_touch_at=now)
        return touch


def _resume_due(camp: Any, tz: str | None, row: m.Enrollment, now: datetime) -> datetime | None:
    if camp.kind == "newsletter":
        return now
    if row.next_step >= len(camp.steps):
        return now
    cal = schedule.calendar_for(camp.window, tz)
    due = sequence.step_due(camp, row.next_step, cal, row.enrolled_at, row.last_touch_at)
    return max(due, schedule.next_open(cal, now) if camp.steps[row.next_step].use_window else now)


def task_digests(db: Database, now: datetime) -> Iterator[tuple[str, str, str]]:
    """(owner, subject, body) for each owner with open tasks."""
    by_owner: dict[str, list[tuple[m.Touch, str]]] = defaultdict(list)
    with db.session() as s:
        rows = s.execute(select(m.Touch, m.Lead.email).join(m.Lead, m.Lead.id == m.Touch.lead_id)
                         .where(m.Touch.kind == "task", m.Touch.state == "open",
                                m.Touch.owner.is_not(None)).order_by(m.Touch.due_at)).all()
        for touch, email in rows:
            by_owner[touch.owner or ""].append((touch, email))
    for owner, tasks in by_owner.items():
        lines = [f"- #{t.id} {t.task_kind or 'task'} for {email} ({t.campaign}): {t.task_text}"
                 for t, email in tasks]
        yield (owner, f"Your open follow-up tasks ({len(tasks)})",
               "Open tasks:\n\n" + "\n".join(lines) + "\n\nMark one done with "
               "`nurture tasks done ID`.\n\n-- Nurture")
