"""Prebuilt statements for the hot path (the per-mail ledger and the batch planner).

Building SQLAlchemy expressions costs about a millisecond a statement; these are built once,
with typed parameters so that times are stored exactly as the ORM stores them.
"""

from __future__ import annotations

from sqlalchemy import TextClause, bindparam, text

from worker.adapters.db.models import UTCDateTime

_DT = UTCDateTime()


def _sql(sql: str, *times: str) -> TextClause:
    return text(sql).bindparams(*(bindparam(name, type_=_DT) for name in times))


TOUCH_RESULT = _sql(
    "UPDATE touches SET state = :state, accepted_at = :accepted_at, smtp_code = :code, "
    "smtp_response = :response WHERE message_id = :mid", "accepted_at")
TOUCH_DEFERRED = _sql(
    "UPDATE touches SET smtp_code = :code, smtp_response = :response WHERE message_id = :mid")
# A 4xx answer: the server has not taken the mail, so it is not handed over (not sent) until
# it is tried again (with the same row and Message-ID). A deferral without an answer (a
# timeout, a connection lost after the final dot) stays handed over: it may have gone out.
TOUCH_REFUSED_FOR_NOW = _sql(
    "UPDATE touches SET smtp_code = :code, smtp_response = :response, state = CASE "
    "WHEN state = 'handed_over' THEN 'planned' ELSE state END WHERE message_id = :mid")
STEP_DONE = _sql(
    "UPDATE enrollments SET next_step = :next_step, last_touch_at = :now, attempts = 0, "
    "updated_at = :now WHERE id = :eid", "now")
CHANGE = _sql(
    "UPDATE enrollments SET next_step = COALESCE(:next_step, next_step), "
    "status = COALESCE(:status, status), last_touch_at = COALESCE(:last_touch_at, last_touch_at), "
    "attempts = COALESCE(:attempts, attempts), next_due_at = :next_due_at, "
    "status_reason = :reason, updated_at = :now, "
    "claimed_by = CASE WHEN :release = 1 THEN NULL ELSE claimed_by END, "
    "claimed_until = CASE WHEN :release = 1 THEN NULL ELSE claimed_until END "
    "WHERE id = :eid", "last_touch_at", "next_due_at", "now")
STATUS_CHANGE = _sql(
    "INSERT INTO status_changes (enrollment_id, lead_id, old, new, reason, at) "
    "VALUES (:eid, :lead_id, :old, :new, :reason, :at)", "at")
OPEN_IN_CAMPAIGN = _sql(
    "SELECT id FROM enrollments WHERE lead_id = :lead_id AND campaign = :campaign "
    "AND status IN ('active', 'waiting', 'paused')")
JOIN = _sql(
    "INSERT INTO enrollments (lead_id, campaign, status, next_step, next_due_at, enrolled_at, "
    "priority, attempts, updated_at) VALUES (:lead_id, :campaign, 'active', 0, :due, :now, 0, 0, "
    ":now) RETURNING id", "due", "now")
STATUS_OF = text("SELECT status FROM enrollments WHERE id = :eid")

# The per-mail statements, for the raw-DBAPI path (``raw.py``): ``:name`` parameters, times as
# the driver binds them, ``{marks}`` for an expanded IN list.
RAW_HANDOVER = (
    "UPDATE touches SET state = 'handed_over', handed_at = :now WHERE message_id IN {marks} "
    "AND state IN ('planned', 'handed_over') AND EXISTS (SELECT 1 FROM enrollments e "
    "WHERE e.id = touches.enrollment_id AND e.claimed_by = :worker "
    "AND e.status IN ('active', 'waiting')) RETURNING message_id")
RAW_WITHDRAW = "UPDATE touches SET state = 'cancelled' WHERE message_id IN {marks} AND state = 'planned'"
# A withdrawn mail's enrolment is not ours to keep: release it (else the heartbeat would renew
# a claim nobody acts on, and its next step could never be claimed).
RAW_RELEASE_WITHDRAWN = ("UPDATE enrollments SET claimed_by = NULL, claimed_until = NULL "
                         "WHERE claimed_by = :worker AND id IN (SELECT enrollment_id FROM touches "
                         "WHERE message_id IN {marks})")
RAW_UPSERT_TOUCH = (
    "INSERT INTO touches (enrollment_id, lead_id, campaign, step_id, step_index, kind, state, "
    "touch_number, message_id, mailbox, subject, planned_at, task_kind, task_text, owner, due_at, "
    "note, created_at) VALUES (:enrollment_id, :lead_id, :campaign, :step_id, :step_index, :kind, "
    ":state, :touch_number, :message_id, :mailbox, :subject, :planned_at, :task_kind, :task_text, "
    ":owner, :due_at, :note, :created_at) ON CONFLICT (enrollment_id, step_id) DO UPDATE SET "
    "state = CASE WHEN touches.state IN ('handed_over', 'accepted') THEN touches.state "
    "ELSE excluded.state END, planned_at = excluded.planned_at, subject = excluded.subject, "
    "mailbox = excluded.mailbox, touch_number = excluded.touch_number")
