"""Use-case: turn claimed, due enrolments into planned touches and ready-to-send mails."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from worker.domain import policy, sequence
from worker.domain.campaigns import Campaign
from worker.domain.catalog import Catalog
from worker.domain.model import Lead
from worker.domain.send_rows import Claimed, ClaimRow, EnrollmentChange, Outcome, PlannedTouch
from worker.domain.sequence import Plan, Policy, TouchPlan
from worker.errors import LimitError, Problem, TemplateError
from worker.logs import mask
from worker.mailer import MailFactory
from worker.ports import Envelope
from worker.ports_store import PlanStore, SuppressedLookup

log = logging.getLogger(__name__)
MISSING_CAMPAIGN_RETRY = timedelta(minutes=15)
CAP_RETRY = timedelta(minutes=10)


@dataclass(frozen=True)
class RenderRequest:
    """One mail to render: the campaign, the planned touch, the lead."""
    campaign: str
    touch: TouchPlan
    lead: Lead
    enrollment_id: int
    now: datetime


@dataclass(frozen=True)
class RenderResult:
    """A rendered mail, or why not."""
    envelope: Envelope | None
    subject: str | None = None
    error: str | None = None
    wait: bool = False  # the campaign is skipped: the lead waits, nothing is failed


def render_mail(catalog: Catalog, factory: MailFactory, request: RenderRequest) -> RenderResult:
    """Build one mail; a template problem becomes an error result, never an exception."""
    campaign = catalog.campaigns.get(request.campaign)
    if campaign is None:
        return RenderResult(None, error=f"campaign {request.campaign!r} is not loaded",
                            wait=request.campaign in catalog.problems)
    try:
        envelope, subject = factory.build(campaign, request.touch, request.lead,
                                          request.enrollment_id, request.now)
    except LimitError as exc:
        catalog.skip(campaign.slug, Problem(exc.template, exc.line, exc.reason))
        return RenderResult(None, error=str(exc), wait=True)
    except (TemplateError, ValueError) as exc:
        return RenderResult(None, error=str(exc))
    return RenderResult(envelope, subject)


def _wait(enrollment_id: int, lead_id: int, step: int, now: datetime,
          slug: str) -> EnrollmentChange:
    """A lead of a campaign that is not loaded (or was skipped): it waits, unchanged."""
    return EnrollmentChange(enrollment_id, lead_id, next_step=step,
                            next_due_at=now + MISSING_CAMPAIGN_RETRY,
                            reason=f"campaign {slug!r} is not loaded (see `nurture check`)")


@dataclass
class _Pending:
    """An email planned, waiting for its rendering."""

    campaign: Campaign
    claimed: Claimed
    plan: Plan
    request: RenderRequest
    on_finish_due: datetime | None


@dataclass
class Staged:
    """A batch planned but not yet rendered nor recorded."""

    touches: list[PlannedTouch] = field(default_factory=list)
    changes: list[EnrollmentChange] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)

    @property
    def requests(self) -> list[RenderRequest]:
        """The render requests of the pending mails."""
        return [p.request for p in self.pending]


@dataclass
class Planned:
    """A batch planned and rendered, to be recorded: plain rows, so it can cross processes."""

    touches: list[PlannedTouch]
    changes: list[EnrollmentChange]
    jobs: list[Job]


@dataclass
class Job:
    """One mail to hand over, with what to record once the server has answered."""

    envelope: Envelope
    enrollment_id: int
    lead_id: int
    campaign: str
    step_id: str
    success: EnrollmentChange
    attempts: int = 0
    first_enrolled_at: datetime | None = None  # set on a lead's first mail (speed to lead)


class Planner:
    """Claimed enrolments -> touches recorded as planned -> jobs for the channels.

    Args:
        store: the sending room (reads the claimed leads, records the plan).
        suppressed: the lead room's suppression lookup (a suppressed lead is never mailed).
        catalog: the campaigns as they are now (a reload replaces them; called each time).
    """

    def __init__(self, store: PlanStore, suppressed: SuppressedLookup,
                 catalog: Callable[[], Catalog], factory: MailFactory, rules: Policy,
                 retry_base_s: float = 60.0, retry_max_s: float = 3600.0) -> None:
        self.store = store
        self.suppressed = suppressed
        self.current_catalog = catalog
        self.factory = factory
        self.rules = rules
        self.retry_base_s = retry_base_s
        self.retry_max_s = retry_max_s
        self.rng = random.Random()

    @property
    def catalog(self) -> Catalog:
        """The campaigns as they are now (read through the getter, never kept)."""
        return self.current_catalog()

    def prepare(self, claimed: list[Claimed], now: datetime) -> list[Job]:
        """Plan every claimed enrolment, render its mail here, record the plan."""
        return self.record(self.plan(claimed, now), now)

    def plan(self, claimed: list[Claimed], now: datetime) -> Planned:
        """Claimed enrolments -> the finished plan, rendered (nothing written)."""
        staged = self.stage(claimed, now)
        return self.finish(staged, self.render(staged.requests), now)

    def stage(self, claimed: list[Claimed], now: datetime) -> Staged:
        """Decide what each claimed enrolment does now; the emails still to be rendered."""
        staged = Staged()
        suppressed = self.suppressed.suppressed_among([c.item.lead.email for c in claimed])
        catalog = self.catalog  # one batch, one catalog (a reload may land meanwhile)
        for c in claimed:
            item = c.item
            lead_id = item.lead.id
            reason = suppressed.get(item.lead.email)
            if reason:
                status = {"bounced": "bounced", "unsubscribed": "unsubscribed"}.get(reason,
                                                                                     "cancelled")
                staged.changes.append(EnrollmentChange(item.enrollment_id, lead_id, status=status,
                                                       reason=f"lead suppressed: {reason}"))
                continue
            campaign = catalog.campaigns.get(c.campaign)
            plan = None
            if campaign is not None:
                try:
                    plan = sequence.plan_due(campaign, item, now, self.rules, self.rng)
                except LimitError as exc:  # a `when` past a limit for this lead
                    catalog.skip(campaign.slug, Problem(exc.template, exc.line, exc.reason))
            if campaign is None or plan is None:
                staged.changes.append(_wait(item.enrollment_id, lead_id, item.next_step, now,
                                            c.campaign))
                continue
            self._collect(campaign, c, plan, now, staged.touches, staged.changes, staged.pending)
        return staged

    def plan_claimed(self, rows: list[ClaimRow], now: datetime) -> Planned:
        """Claimed rows -> the finished plan, rendered (reads only: the render process runs
        this on its own connection, and the worker records the result)."""
        return self.plan(self.store.load_claimed(rows), now)

    def finish(self, staged: Staged, results: list[RenderResult], now: datetime) -> Planned:
        """Staged plan + rendered mails -> the rows to record and the jobs to send."""
        touches, changes = list(staged.touches), list(staged.changes)
        jobs: list[Job] = []
        for p, result in zip(staged.pending, results, strict=True):
            self._finish(p, result, now, touches, changes, jobs)
        return Planned(touches, changes, jobs)

    def record(self, planned: Planned, now: datetime) -> list[Job]:
        """Record a finished plan (one transaction; caps checked there); the jobs to send."""
        touches, changes, jobs = planned.touches, planned.changes, planned.jobs
        caps = {box: fn for box in {j.envelope.mailbox for j in jobs}
                if (fn := self.factory.mailboxes.cap(box)) is not None}
        refused = self.store.plan(touches, changes, now, caps or None)
        if refused:
            kept = []
            deferred = []
            for job in jobs:
                if job.envelope.message_id in refused:
                    deferred.append(EnrollmentChange(
                        job.enrollment_id, job.lead_id, next_due_at=now + CAP_RETRY,
                        reason=f"mailbox {job.envelope.mailbox} is at its cap"))
                else:
                    kept.append(job)
            self.store.plan([], deferred, now)
            log.info("action=cap_deferred count=%d", len(deferred))
            jobs = kept
        return jobs

    def render(self, requests: list[RenderRequest]) -> list[RenderResult]:
        """Render the requests (sandboxed), in order."""
        return [render_mail(self.catalog, self.factory, r) for r in requests]

    def _collect(self, campaign: Campaign, c: Claimed, plan: Plan, now: datetime,
                 touches: list[PlannedTouch], changes: list[EnrollmentChange],
                 pending: list[_Pending]) -> None:
        item = c.item
        lead = item.lead
        for t in plan.touches:
            touches.append(self._touch_row(campaign, c, t, now))
        if plan.defer_until is not None:
            changes.append(EnrollmentChange(item.enrollment_id, lead.id, next_step=item.next_step,
                                            next_due_at=plan.defer_until, reason=plan.defer_reason))
            return
        after = plan.after
        on_finish_due = None
        if plan.on_finish and plan.on_finish in self.catalog.campaigns:
            on_finish_due = sequence.first_due(self.catalog.campaigns[plan.on_finish], lead, now)
        if plan.email is None:
            assert after is not None
            changes.append(EnrollmentChange(
                item.enrollment_id, lead.id, next_step=after.next_step,
                next_due_at=after.next_due_at, status=after.status, reason=after.reason,
                last_touch_at=now if plan.touches else None, on_finish=plan.on_finish,
                on_finish_due=on_finish_due))
            return
        assert after is not None
        pending.append(_Pending(campaign, c, plan, RenderRequest(
            campaign.slug, plan.email, lead, item.enrollment_id, now), on_finish_due))

    def _finish(self, p: _Pending, result: RenderResult, now: datetime,
                touches: list[PlannedTouch], changes: list[EnrollmentChange],
                jobs: list[Job]) -> None:
        """A rendered (or failed) email: its touch row, and the job or the failure."""
        item, plan, campaign = p.claimed.item, p.plan, p.campaign
        lead = item.lead
        assert plan.email is not None and plan.after is not None
        if result.wait:
            changes.append(_wait(item.enrollment_id, lead.id, item.next_step, now, campaign.slug))
            return
        row = self._touch_row(campaign, p.claimed, plan.email, now)
        if result.envelope is None:
            reason = f"cannot render: {result.error}"
            log.warning("action=render_failed campaign=%s step=%s lead=%s error=%r",
                        campaign.slug, plan.email.step.id, mask(lead.email), reason)
            row.state, row.note = "failed", reason
            touches.append(row)
            changes.append(EnrollmentChange(item.enrollment_id, lead.id, status="failed",
                                            reason=reason, next_step=item.next_step))
            return
        envelope, after = result.envelope, plan.after
        row.message_id, row.mailbox, row.subject = envelope.message_id, envelope.mailbox, \
            result.subject
        touches.append(row)
        success = EnrollmentChange(item.enrollment_id, lead.id, next_step=after.next_step,
                                   next_due_at=after.next_due_at, status=after.status,
                                   reason=after.reason, on_finish=plan.on_finish,
                                   on_finish_due=p.on_finish_due, basis_at=now,
                                   from_status=item.status)
        first = item.enrolled_at if plan.email.touch_number == 1 else None
        jobs.append(Job(envelope, item.enrollment_id, lead.id, campaign.slug, plan.email.step.id,
                        success, attempts=item.attempts, first_enrolled_at=first))

    @staticmethod
    def _touch_row(campaign: Campaign, c: Claimed, t: TouchPlan, now: datetime) -> PlannedTouch:
        step = t.step
        index = campaign.steps.index(step) if step in campaign.steps else 0
        row = PlannedTouch(c.item.enrollment_id, c.item.lead.id, campaign.slug, step.id, index,
                           kind="email" if t.kind in ("email", "skipped") else "task",
                           state={"email": "planned", "task": "open", "skipped": "skipped"}[t.kind],
                           touch_number=t.touch_number)
        if t.kind == "skipped":
            row.kind = "email" if getattr(step, "task", None) is None else "task"
            row.note = t.reason
        if t.kind == "task":
            row.task_kind = getattr(step, "task_kind", None)
            row.task_text = getattr(step, "task", None)
            row.owner = t.owner
            row.due_at = now
        return row

    # --- outcomes ---------------------------------------------------------------------------------

    def deferred(self, job: Job, code: int | None, text: str, now: datetime,
                 throttled: bool) -> Outcome:
        """A transient failure: the step stays planned and is tried again later."""
        job.attempts += 1
        wait = policy.backoff_s(job.attempts, 30.0 if throttled else self.retry_base_s,
                                self.retry_max_s, self.rng)
        change = EnrollmentChange(job.enrollment_id, job.lead_id, next_due_at=now + timedelta(
            seconds=wait), attempts=job.attempts, reason=f"deferred: {code or ''} {text}"[:500])
        return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, "deferred", code,
                       text, change)

    def refused(self, job: Job, code: int | None, text: str) -> Outcome:
        """A permanent failure: bounced for a refused address (5.1.x), failed otherwise."""
        bounced = policy.is_recipient_rejection(code, text)
        state = "bounced" if bounced else "failed"
        change = EnrollmentChange(job.enrollment_id, job.lead_id, status=state,
                                  reason=(f"{code} {text}" if code else text)[:500])
        return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, state, code, text,
                       change)
