"""The webhook events of the sending path, read inside the ledger's own transaction.

``SendingRows`` (ledger.py) calls these only when an endpoint is enabled, so the busiest path
pays nothing without webhooks; with them, one or two extra reads per committed batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select, tuple_

from worker.adapters.db import models as m
from worker.adapters.db.webhook_store import leads_in
from worker.domain import webhooks as wh
from worker.domain.send_rows import EnrollmentChange, Outcome, PlannedTouch

T, E = m.Touch, m.Enrollment
#: Outcomes that end a mail: accepted is ``mail.sent``, the rest ``mail.failed``.
FINAL = ("accepted", "failed", "bounced")


def mail_events(conn: Any, outcomes: Sequence[Outcome], now: datetime) -> list[wh.WebhookEvent]:
    """``mail.sent`` / ``mail.failed`` for the finished mails among ``outcomes``; a refused
    address (``bounced``: a 5.1.x answer at SMTP time) is also ``lead.bounced``, hard, with
    the server's words, written with the touch's bounced state."""
    done = {o.message_id: o for o in outcomes if o.state in FINAL}
    if not done:
        return []
    rows = conn.execute(select(T.message_id, T.lead_id, T.campaign, T.step_id, T.subject)
                        .where(T.message_id.in_(list(done)))).all()
    leads = leads_in(conn, [r.lead_id for r in rows])
    events = []
    for r in sorted(rows, key=lambda r: r.message_id):
        lead, o = leads.get(r.lead_id), done[r.message_id]
        if lead is None:
            continue
        if o.state == "accepted":
            events.append(wh.mail_sent(lead, now, r.campaign, r.step_id, r.message_id, r.subject))
        else:
            events.append(wh.mail_failed(lead, now, r.campaign, r.step_id, o.code,
                                         o.response[:2000]))
            if o.state == "bounced":
                events.append(wh.lead_bounced(lead, now, r.campaign, r.step_id, "hard",
                                              o.response[:2000]))
    return events


def completed_events(conn: Any, changes: Sequence[EnrollmentChange],
                     now: datetime) -> list[wh.WebhookEvent]:
    """``enrollment.completed`` for enrolments that just reached ``completed``."""
    if not changes:
        return []
    campaigns = dict(conn.execute(select(E.id, E.campaign).where(
        E.id.in_([c.enrollment_id for c in changes]))).all())
    leads = leads_in(conn, [c.lead_id for c in changes])
    return [wh.enrollment_completed(leads[c.lead_id], now, campaigns[c.enrollment_id],
                                    c.on_finish)
            for c in changes if c.lead_id in leads and c.enrollment_id in campaigns]


def joined_events(conn: Any, lead_id: int, campaign: str,
                  now: datetime) -> list[wh.WebhookEvent]:
    """``lead.enrolled`` for a lead that ``on_finish`` just moved into ``campaign``."""
    return [wh.lead_enrolled(lead, now, campaign) for lead in leads_in(conn, [lead_id]).values()]


def known_tasks(conn: Any, touches: Sequence[PlannedTouch]) -> set[tuple[int, str]]:
    """The (enrolment, step) of task touches already stored: planning them again (a retry)
    is not a new task."""
    keys = [(t.enrollment_id, t.step_id) for t in touches if t.kind == "task"]
    if not keys:
        return set()
    return {(r[0], r[1]) for r in conn.execute(select(T.enrollment_id, T.step_id).where(
        tuple_(T.enrollment_id, T.step_id).in_(keys)))}


def task_events(conn: Any, touches: Sequence[PlannedTouch], known: set[tuple[int, str]],
                now: datetime) -> list[wh.WebhookEvent]:
    """``task.created`` for the task touches just planned (not those stored before)."""
    fresh = [t for t in touches if t.kind == "task" and (t.enrollment_id, t.step_id) not in known]
    if not fresh:
        return []
    ids = {(r[0], r[1]): r[2] for r in conn.execute(
        select(T.enrollment_id, T.step_id, T.id).where(
            tuple_(T.enrollment_id, T.step_id).in_([(t.enrollment_id, t.step_id)
                                                    for t in fresh])))}
    leads = leads_in(conn, [t.lead_id for t in fresh])
    return [wh.task_created(leads[t.lead_id], now, t.campaign, t.step_id,
                            ids[(t.enrollment_id, t.step_id)], t.task_kind or "task",
                            t.task_text or "", t.owner, t.due_at)
            for t in fresh if t.lead_id in leads and (t.enrollment_id, t.step_id) in ids]
