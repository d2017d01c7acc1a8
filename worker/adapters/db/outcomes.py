"""The answers the ledger records statement by statement kind, not mail by mail, that are not
the common case (``accepted.py``): a refusal, a deferral, a last step whose enrolment joins its
``on_finish`` campaign.

A group commit of ten connections carries up to ten such answers. Each kind of statement runs
once per commit as an executemany, so the commit's cost no longer grows with a round trip
(PostgreSQL) or a statement's fixed cost (SQLite) per mail. The result is the same as
recording the answers one after another: a second answer for the same enrolment in one commit
(rare) goes in a later round, after the first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from worker.adapters.db import models as m
from worker.adapters.db import sql
from worker.domain.send_rows import EnrollmentChange, Outcome

ApplyChanges = Callable[[Any, Sequence[EnrollmentChange], datetime], None]


def record_outcomes(conn: Any, worker_id: str, outcomes: Sequence[Outcome], now: datetime,
                    apply_changes: ApplyChanges) -> None:
    """Record ``outcomes`` in the open transaction ``conn``; ``apply_changes`` writes the
    enrolment changes of those whose enrolment this worker still holds."""
    for round_ in _rounds(outcomes):
        _record_round(conn, worker_id, round_, now, apply_changes)


def _rounds(outcomes: Sequence[Outcome]) -> list[list[Outcome]]:
    """Split so that an enrolment appears at most once per round, in the given order."""
    rounds: list[list[Outcome]] = []
    seen: dict[int, int] = {}
    for o in outcomes:
        index = seen.get(o.enrollment_id, 0)
        seen[o.enrollment_id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(o)
    return rounds


def _record_round(conn: Any, worker_id: str, outcomes: list[Outcome], now: datetime,
                  apply_changes: ApplyChanges) -> None:
    by_statement: dict[Any, list[dict[str, Any]]] = {}
    for o in outcomes:
        response = o.response[:2000]
        params: dict[str, Any]
        if o.state == "deferred":
            statement = sql.TOUCH_DEFERRED if o.code is None else sql.TOUCH_REFUSED_FOR_NOW
            params = {"mid": o.message_id, "code": o.code, "response": response}
        else:
            statement = sql.TOUCH_RESULT
            params = {"mid": o.message_id, "state": o.state, "code": o.code,
                      "response": response, "accepted_at": now if o.state == "accepted" else None}
        by_statement.setdefault(statement, []).append(params)
    for statement, rows in by_statement.items():
        conn.execute(statement, rows)
    changes: list[EnrollmentChange] = []
    done: list[dict[str, Any]] = []
    for o in outcomes:
        if o.change is None:
            continue
        # A copy: if this transaction fails, the caller retries with the original change.
        c = dataclasses.replace(o.change)
        if o.state == "accepted":
            # The step is done whatever happened meanwhile (a reply may have stopped the
            # enrolment); the schedule and status move only while this worker holds the claim.
            done.append({"eid": c.enrollment_id, "next_step": c.next_step, "now": now})
            c.last_touch_at, c.next_step = now, None
            c.next_due_at = c.due_when_accepted(now)
        changes.append(c)
    if done:
        conn.execute(sql.STEP_DONE, done)
    if not changes:
        return
    E = m.Enrollment
    held = set(conn.execute(select(E.id).where(
        E.id.in_([c.enrollment_id for c in changes]), E.claimed_by == worker_id)).scalars())
    kept = [c for c in changes if c.enrollment_id in held]
    if kept:
        apply_changes(conn, kept, now)
