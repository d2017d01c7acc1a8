"""The common answer, written raw: a mail accepted and its enrolment moving on to its next
step, or finishing (the last step of a sequence without ``on_finish``).

Every group commit of the ledger carries mostly these, so they go through the raw DBAPI
cursor (``raw.py``) as a few executemany statements for the whole group, whatever its size:
the touch's answer, the status-change row where the status changes, and the enrolment's
move. The result is the one ``outcomes.py`` writes for the other answers: the step is done
whatever happened meanwhile; the schedule, status and claim move only while this worker
still holds the claim (a reply may have stopped the enrolment meanwhile).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.adapters.db.raw import RawSQL
from worker.domain.send_rows import EnrollmentChange, Outcome

RESULT = ("UPDATE touches SET state = 'accepted', accepted_at = :now, smtp_code = :code, "
          "smtp_response = :response WHERE message_id = :mid")
# The status-change row, written before the move (which releases the claim it checks).
AUDIT = ("INSERT INTO status_changes (enrollment_id, lead_id, old, new, reason, at) "
         "SELECT id, lead_id, status, CAST(:status AS VARCHAR), :reason, :now FROM enrollments "
         "WHERE id = :eid AND claimed_by = :worker AND status <> CAST(:status AS VARCHAR)")
ADVANCE = (
    "UPDATE enrollments SET next_step = :next_step, last_touch_at = :now, attempts = 0, "
    "updated_at = :now, "
    # The schedule follows the step even if another worker took the claim over meanwhile
    # (a lease that ran out mid-send); an out-of-office date already later is kept.
    "next_due_at = CASE WHEN claimed_by = :worker THEN :next_due_at "
    "WHEN status IN ('active', 'waiting') THEN CASE WHEN next_due_at > :next_due_at "
    "THEN next_due_at ELSE :next_due_at END ELSE next_due_at END, "
    "status = CASE WHEN claimed_by = :worker THEN 'active' ELSE status END, "
    "status_reason = CASE WHEN claimed_by = :worker THEN NULL ELSE status_reason END, "
    "claimed_until = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_until END, "
    "claimed_by = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_by END "
    "WHERE id = :eid")
FINISH = (
    "UPDATE enrollments SET next_step = :next_step, last_touch_at = :now, attempts = 0, "
    "updated_at = :now, "
    "next_due_at = CASE WHEN claimed_by = :worker THEN :next_due_at ELSE next_due_at END, "
    "status = CASE WHEN claimed_by = :worker THEN :status ELSE status END, "
    "status_reason = CASE WHEN claimed_by = :worker THEN :reason ELSE status_reason END, "
    "claimed_until = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_until END, "
    "claimed_by = CASE WHEN claimed_by = :worker THEN NULL ELSE claimed_by END "
    "WHERE id = :eid")
# With webhooks: the enrolments that this commit finishes (held, not finished before).
FINISHING = ("SELECT id FROM enrollments WHERE id IN {marks} AND claimed_by = :worker "
             "AND status <> 'completed'")


def fast(o: Outcome) -> bool:
    """Whether ``o`` is written here: accepted, the enrolment moving on or finishing, with
    nothing else to do (no ``on_finish`` campaign to join)."""
    c = o.change
    return (o.state == "accepted" and c is not None and c.status in (None, "active", "completed")
            and not c.on_finish and c.release and c.attempts is None
            and c.last_touch_at is None)


@dataclass(frozen=True)
class Move:
    """What an accepted ``fast`` answer does to its enrolment, while this worker holds it."""

    due: datetime | None  # the next step's due time (a wait counts from the acceptance)
    finish: bool          # the last step: the enrolment completes
    audit: bool           # a status-change row, where the status does change
    status: str           # the status it moves to
    reason: str | None    # the status-change row's reason (and a finished one's)


def move_of(c: EnrollmentChange, now: datetime) -> Move:
    """The ``Move`` of ``c`` for a mail accepted at ``now``. An enrolment claimed while
    `active` (and still claimed, so unchanged) needs no status-change row."""
    finish = c.status == "completed"
    return Move(c.due_when_accepted(now), finish, finish or c.from_status != "active",
                "completed" if finish else "active", c.reason if finish else "step sent")


class AcceptedRows:
    """The statements of ``record``, in the driver's parameter style, built once."""

    def __init__(self, raw: RawSQL) -> None:
        self.raw = raw
        self.result, self.audit = raw.sql(RESULT), raw.sql(AUDIT)
        self.advance, self.finish = raw.sql(ADVANCE), raw.sql(FINISH)

    def record(self, cur: Any, worker_id: str, outcomes: Sequence[Outcome], now: datetime,
               events: bool) -> list[EnrollmentChange]:
        """Write ``outcomes`` (each ``fast``) with the open cursor ``cur``; returns, when
        ``events`` is asked for, the changes that finish an enrolment now (for
        ``enrollment.completed``)."""
        at = self.raw.ts(now)
        cur.executemany(self.result, [{"mid": o.message_id, "code": o.code, "now": at,
                                       "response": o.response[:2000]} for o in outcomes])
        moving: list[dict[str, Any]] = []
        finishing: list[dict[str, Any]] = []
        audit: list[dict[str, Any]] = []
        changes: dict[int, EnrollmentChange] = {}
        for o in outcomes:
            c = o.change
            assert c is not None
            move = move_of(c, now)
            # One row for each statement of this mail (a statement ignores what it does not name).
            row = {"eid": c.enrollment_id, "next_step": c.next_step, "now": at,
                   "next_due_at": self.raw.ts(move.due), "worker": worker_id,
                   "status": move.status, "reason": move.reason}
            (finishing if move.finish else moving).append(row)
            if move.finish:
                changes[c.enrollment_id] = c
            if move.audit:
                audit.append(row)
        ends = self._finishing(cur, worker_id, changes) if events and changes else []
        if audit:
            cur.executemany(self.audit, audit)
        if moving:
            cur.executemany(self.advance, moving)
        if finishing:
            cur.executemany(self.finish, finishing)
        return ends

    def _finishing(self, cur: Any, worker_id: str,
                   changes: dict[int, EnrollmentChange]) -> list[EnrollmentChange]:
        marks, params = self.raw.in_list("e", list(changes))
        cur.execute(self.raw.sql(FINISHING.format(marks=marks)), {**params, "worker": worker_id})
        return [changes[row[0]] for row in cur.fetchall()]
