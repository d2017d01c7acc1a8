"""Use-cases done by hand (the command line, the unsubscribe link): pause, resume, cancel,
unsubscribe, finish a task."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from worker.domain import schedule, sequence
from worker.domain.campaigns import Campaign
from worker.domain.catalog import Catalog
from worker.domain.model import EnrollmentStatus, SuppressionReason
from worker.errors import NotFound, UserError
from worker.logs import mask
from worker.ports import Clock, EnrollmentRow, TaskRow, Wake
from worker.ports_store import LeadStore
from worker.usecases.intake import refuse_suppressed
from worker.usecases.suppress import Suppress

log = logging.getLogger("worker.service")  # the name operators' log filters know
#: What ``lead.unsubscribed`` says for each source of an unsubscribe by hand.
UNSUBSCRIBE_HOW = {"cli": "command", "one-click": "link", "api": "api", "workspace": "command"}


class ByHand:
    """What a person does to a lead's enrolments.

    Args:
        store: leads and enrolments: the lead room (``LeadStore``).
        catalog: returns the current campaigns.
        clock: when a resumed step or a finished task's next step is due.
        wake: called after a resume, so the loop plans what became due.
        suppress: the one "address is dead" consequence (unsubscribe uses it).
    """

    def __init__(self, store: LeadStore, catalog: Callable[[], Catalog], clock: Clock,
                 wake: Wake, suppress: Suppress) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.wake = wake
        self.suppress = suppress

    def lead_id(self, email: str) -> int:
        """The id of the lead with this address; NotFound otherwise."""
        lead = self.store.lead_by_email(email.strip().lower())
        if lead is None:
            raise NotFound(f"no lead {email!r}")
        return lead.id

    def pause(self, email: str, campaign: str | None) -> list[str]:
        """Pause the lead's running enrolments (in ``campaign`` or all); their campaigns."""
        return self._set(email, campaign, ["active", "waiting"], "paused", "paused by hand")

    def cancel(self, email: str, campaign: str | None) -> list[str]:
        """Cancel the lead's open enrolments (in ``campaign`` or all); their campaigns."""
        return self._set(email, campaign, ["active", "waiting", "paused"], "cancelled",
                         "cancelled by hand")

    def _set(self, email: str, campaign: str | None, current: list[str], status: str,
             reason: str) -> list[str]:
        lead_id = self.lead_id(email)
        changed = [slug for _, slug in self.store.close_enrollments(
            [lead_id], EnrollmentStatus(status), reason, current, campaign)]
        if not changed:
            raise UserError(f"{email}: no enrolment to {status.rstrip('ed')}"
                            f"{' in ' + campaign if campaign else ''}")
        return changed

    def resume(self, email: str, campaign: str | None) -> list[str]:
        """A paused, replied or failed enrolment goes on from its next step."""
        lead_id = self.lead_id(email)
        lead = self.store.lead_by_id(lead_id)
        assert lead is not None
        refuse_suppressed(self.store, lead.email)
        now = self.clock.now()
        resumed: list[str] = []
        campaigns = self.catalog().campaigns
        for row in self.store.enrollments_of(lead_id, campaign, ["paused", "replied", "failed"]):
            camp = campaigns.get(row.campaign)
            if camp is None:
                continue
            if self.store.enrollments_of(lead_id, row.campaign, ["active", "waiting"]):
                continue
            due = resume_due(camp, lead.timezone, row, now)
            self.store.set_enrollment(row.id, status="active", reason="resumed by hand",
                                      next_due_at=due)
            resumed.append(row.campaign)
        if not resumed:
            raise UserError(f"{email}: nothing to resume{' in ' + campaign if campaign else ''}")
        self.wake()
        return resumed

    def unsubscribe(self, lead_id: int, source: str) -> bool:
        """Global: the lead gets nothing more from any campaign. False if already done."""
        done = self.suppress(lead_id, SuppressionReason.UNSUBSCRIBED,
                             EnrollmentStatus.UNSUBSCRIBED, source,
                             UNSUBSCRIBE_HOW.get(source.split(" ")[0]))
        if done is None:
            return False
        if done.added or done.closed:
            log.info("action=unsubscribed lead=%s source=%s enrollments=%d",
                     mask(done.lead.email), source, len(done.closed))
        return bool(done.added or done.closed)

    def complete_task(self, touch_id: int, note: str | None) -> TaskRow:
        """Mark a task done; a sequence waiting for it gets its next step's date."""
        now = self.clock.now()
        touch = self.store.finish_task(touch_id, note, now)
        rows = [r for r in self.store.enrollments_of(touch.lead_id, touch.campaign)
                if r.id == touch.enrollment_id]
        enrollment = rows[0] if rows else None
        if enrollment and enrollment.status == "active" and enrollment.next_due_at is None:
            camp = self.catalog().campaigns.get(enrollment.campaign)
            lead = self.store.lead_by_id(enrollment.lead_id)
            if camp and lead and enrollment.next_step < len(camp.steps):
                cal = schedule.calendar_for(camp.window, lead.timezone)
                due = sequence.step_due(camp, enrollment.next_step, cal, enrollment.enrolled_at,
                                        now)
                self.store.set_enrollment(enrollment.id, status="active",
                                          reason=f"task {touch_id} done", next_due_at=due,
                                          last_touch_at=now)
        return touch


def resume_due(camp: Campaign, tz: str | None, row: EnrollmentRow,
               now: datetime) -> datetime | None:
    """When a resumed enrolment's next step is due: its own date, not before the window
    opens; a newsletter or a finished sequence goes on now."""
    if camp.kind == "newsletter":
        return now
    if row.next_step >= len(camp.steps):
        return now
    cal = schedule.calendar_for(camp.window, tz)
    due = sequence.step_due(camp, row.next_step, cal, row.enrolled_at, row.last_touch_at)
    return max(due, schedule.next_open(cal, now) if camp.steps[row.next_step].use_window else now)
