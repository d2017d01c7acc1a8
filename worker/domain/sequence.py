"""What to do with a due enrolment: send a step, create a task, skip, defer or finish.

Pure: the claimed enrolment's state and "now" come in, a ``Plan`` comes out. Tasks and
skipped steps do not wait for anything, so one call walks forward through them until it
reaches an email or a step that is not due yet.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from worker.domain import schedule
from worker.domain.campaigns import Campaign, Issue, Step
from worker.domain.model import Lead

LATE_AFTER = timedelta(hours=24)


@dataclass(frozen=True)
class PriorTouch:
    step_id: str
    kind: str
    state: str
    message_id: str | None
    subject: str | None
    at: datetime | None


@dataclass(frozen=True)
class DueItem:
    """A claimed enrolment as the planner sees it."""

    enrollment_id: int
    lead: Lead
    status: str
    next_step: int
    next_due_at: datetime | None
    enrolled_at: datetime
    last_touch_at: datetime | None
    touches: tuple[PriorTouch, ...] = ()
    attempts: int = 0  # transient failures of the current step so far


@dataclass(frozen=True)
class TouchPlan:
    step: Step | Issue
    kind: str          # email | task | skipped
    reason: str = ""   # why skipped
    touch_number: int | None = None
    thread_parent: PriorTouch | None = None
    references: tuple[str, ...] = ()
    owner: str | None = None
    resume: PriorTouch | None = None  # an earlier planned/handed-over attempt of this email


@dataclass(frozen=True)
class Advance:
    """The enrolment after the touches of this plan are done."""

    next_step: int
    next_due_at: datetime | None
    status: str = "active"      # active | completed
    reason: str | None = None


@dataclass
class Plan:
    touches: list[TouchPlan] = field(default_factory=list)
    email: TouchPlan | None = None        # at most one email per pass
    after: Advance | None = None          # state once the email (or tasks) are done
    defer_until: datetime | None = None   # nothing to do now; come back then
    defer_reason: str = ""
    on_finish: str | None = None


@dataclass(frozen=True)
class Policy:
    late_policy: str = "send"   # send | skip | spread
    late_spread_h: float = 4.0
    default_owner: str | None = None


def condition_context(lead: Lead, events: list[str] | None = None) -> dict[str, Any]:
    view = lead.template_view()
    return {"lead": view, "fields": view.get("fields", {}),
            "interactions": len(events or []), "events": events or []}


def step_due(campaign: Campaign, index: int, cal: schedule.Calendar, enrolled_at: datetime,
             previous_at: datetime | None) -> datetime:
    step = campaign.steps[index]
    return schedule.due_at(cal, enrolled_at=enrolled_at, previous_at=previous_at, wait=step.wait,
                           day=step.day, use_window=step.use_window)


def plan_due(campaign: Campaign, item: DueItem, now: datetime, policy: Policy,
             rng: random.Random | None = None) -> Plan:
    """Decide what a due enrolment does now."""
    cal = schedule.calendar_for(campaign.window, item.lead.timezone)
    if campaign.kind == "newsletter":
        return _plan_issue(campaign, item, now, cal)
    plan = Plan()
    index, previous_at = item.next_step, item.last_touch_at
    due = item.next_due_at or now
    emails = sum(1 for t in item.touches if t.kind == "email" and t.state in
                 ("accepted", "handed_over"))
    ctx = condition_context(item.lead)
    while index < len(campaign.steps):
        step = campaign.steps[index]
        existing = next((t for t in item.touches if t.step_id == step.id), None)
        if existing and existing.state in ("accepted", "open", "done", "skipped"):
            index += 1  # already done on an earlier pass (a crash between record and advance)
            previous_at = existing.at or previous_at
            continue
        if due - now > timedelta(0) and index != item.next_step:
            return _advance_only(plan, index, due)
        late = now - due > LATE_AFTER and policy.late_policy != "send"
        if late and policy.late_policy == "spread" and step.task is None:
            spread = (rng or random.Random()).uniform(0, policy.late_spread_h * 3600)
            plan.defer_until = schedule.next_open(cal, now + timedelta(seconds=spread))
            plan.defer_reason = f"late by {now - due}: spread over {policy.late_spread_h}h"
            return plan
        when = campaign.conditions.get(step.id)
        if late and policy.late_policy == "skip":
            plan.touches.append(TouchPlan(step, "skipped", f"late by {now - due}"))
        elif when is not None and not when(ctx):
            plan.touches.append(TouchPlan(step, "skipped", f"when is false: {step.when}"))
        elif step.task is not None:
            owner = item.lead.owner or policy.default_owner
            plan.touches.append(TouchPlan(step, "task", owner=owner))
            if step.wait_for_task:
                plan.after = Advance(index + 1, None, "active", f"waiting for task {step.id}")
                return plan
        else:
            if step.use_window and campaign.window and campaign.window.restricts:
                opens = schedule.next_open(cal, now)
                if opens > now:
                    plan.defer_until, plan.defer_reason = opens, "send window closed"
                    return plan
            parent = _last_email(item.touches) if step.thread else None
            plan.email = TouchPlan(step, "email", touch_number=emails + 1, thread_parent=parent,
                                   references=_references(item.touches) if step.thread else (),
                                   resume=existing if existing and existing.state in
                                   ("planned", "handed_over") else None)
            plan.after = _after(campaign, index + 1, cal, item.enrolled_at, now)
            if plan.after.status == "completed":
                plan.on_finish = campaign.on_finish
            return plan
        previous_at = now
        index += 1
        if index < len(campaign.steps):
            due = step_due(campaign, index, cal, item.enrolled_at, previous_at)
    plan.after = Advance(index, None, "completed", "last step done")
    plan.on_finish = campaign.on_finish
    return plan


def _advance_only(plan: Plan, index: int, due: datetime) -> Plan:
    plan.after = Advance(index, due)
    return plan


def _after(campaign: Campaign, index: int, cal: schedule.Calendar, enrolled_at: datetime,
           sent_at: datetime) -> Advance:
    if index >= len(campaign.steps):
        return Advance(index, None, "completed", "last step sent")
    return Advance(index, step_due(campaign, index, cal, enrolled_at, sent_at))


def _last_email(touches: tuple[PriorTouch, ...]) -> PriorTouch | None:
    sent = [t for t in touches if t.kind == "email" and t.state in ("accepted", "handed_over")
            and t.message_id]
    return sent[-1] if sent else None


def _references(touches: tuple[PriorTouch, ...]) -> tuple[str, ...]:
    return tuple(t.message_id for t in touches if t.kind == "email" and t.message_id
                 and t.state in ("accepted", "handed_over"))


def _plan_issue(campaign: Campaign, item: DueItem, now: datetime,
                cal: schedule.Calendar) -> Plan:
    """Newsletter: send the oldest issue due since the member joined and not yet sent."""
    plan = Plan()
    done = {t.step_id for t in item.touches if t.state in ("accepted", "handed_over", "skipped")}
    joined = item.enrolled_at.astimezone(cal.tz).date()
    upcoming: datetime | None = None
    for issue in campaign.issues:
        if issue.id in done or issue.send_on < joined:
            continue
        at = schedule.issue_due_at(cal, issue.send_on, item.enrolled_at)
        if at <= now:
            existing = next((t for t in item.touches if t.step_id == issue.id), None)
            plan.email = TouchPlan(issue, "email", touch_number=len(done) + 1,
                                   resume=existing if existing and existing.state in
                                   ("planned", "handed_over") else None)
            upcoming = _next_issue(campaign, cal, item, done | {issue.id})
            plan.after = Advance(0, upcoming, "active")
            return plan
        upcoming = at
        break
    plan.after = Advance(0, upcoming, "active")
    return plan


def _next_issue(campaign: Campaign, cal: schedule.Calendar, item: DueItem,
                done: set[str]) -> datetime | None:
    joined = item.enrolled_at.astimezone(cal.tz).date()
    for issue in campaign.issues:
        if issue.id not in done and issue.send_on >= joined:
            return schedule.issue_due_at(cal, issue.send_on, item.enrolled_at)
    return None


def first_due(campaign: Campaign, lead: Lead, enrolled_at: datetime) -> datetime | None:
    """When a fresh enrolment's first touch is due."""
    cal = schedule.calendar_for(campaign.window, lead.timezone)
    if campaign.kind == "newsletter":
        item = DueItem(0, lead, "active", 0, None, enrolled_at, None)
        return _next_issue(campaign, cal, item, set())
    if not campaign.steps:
        return None
    return step_due(campaign, 0, cal, enrolled_at, None)


@dataclass(frozen=True)
class SimulatedTouch:
    at: datetime
    step_id: str
    kind: str  # email | task | skipped


def simulate(campaign: Campaign, lead: Lead, start: datetime,
             context: Mapping[str, Any] | None = None) -> list[SimulatedTouch]:
    """Every touch a lead would get from ``start``, each step sent the moment it is due."""
    cal = schedule.calendar_for(campaign.window, lead.timezone)
    out: list[SimulatedTouch] = []
    if campaign.kind == "newsletter":
        joined = start.astimezone(cal.tz).date()
        return [SimulatedTouch(schedule.issue_due_at(cal, i.send_on, start), i.id, "email")
                for i in campaign.issues if i.send_on >= joined]
    ctx = dict(context or condition_context(lead))
    previous: datetime | None = None
    for index, step in enumerate(campaign.steps):
        at = step_due(campaign, index, cal, start, previous)
        when = campaign.conditions.get(step.id)
        kind = "skipped" if when is not None and not when(ctx) else step.kind
        out.append(SimulatedTouch(at, step.id, kind))
        previous = at
    return out
