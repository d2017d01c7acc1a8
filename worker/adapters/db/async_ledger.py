"""The ledger's group commit on PostgreSQL, on the event loop, in one statement.

From a thread, a group commit spent most of its time not in PostgreSQL but waiting, at each
round trip, for the interpreter lock held by the busy event loop, and each mail's rows cost
the client a round of work per statement. Here the common group (every answer ``fast``, no
webhook event to write) is one statement on a connection of the loop's own: the answers,
their status-change rows, the enrolments' moves, the hand-over of the next mails and the
withdrawal of the ones whose enrolment lost its claim, with one array per column as
parameters. It is planned once: every part of it has an index path, and that connection may
use nothing else (a plan made while the tables were small must not become a scan of the
whole table as they grow). Any other group goes to ``SendingRows.record`` in a thread; the
ledger commits one group at a time, so the two paths never overlap.

What it writes is what ``accepted.py`` and ``SendingRows.record`` write (tested side by side).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Engine

from worker.adapters.db.accepted import fast, move_of
from worker.adapters.db.ledger import SendingRows
from worker.domain.send_rows import Outcome
from worker.errors import StoreError

PLANNER = ("-c plan_cache_mode=force_generic_plan -c enable_seqscan=off "
           "-c enable_hashjoin=off -c enable_mergejoin=off")
COLUMNS = ("mid", "code", "response", "eid", "next_step", "due", "finish", "audit", "status",
           "reason")
# Data-modifying parts of one WITH all see the tables as they were when it started: the
# status-change rows read the status before the move, and the hand-over reads the claims
# before it (a mail handed over belongs to another enrolment than the answers of its group:
# a next step is planned only after the claim of the previous one is released). A mail not
# handed over is withdrawn, and its enrolment released whatever its touch's state (another
# worker may have recorded its answer meanwhile), as ``SendingRows.record`` does.
GROUP = """
WITH v AS (
  SELECT * FROM unnest(CAST(%(mid)s AS text[]), CAST(%(code)s AS int[]),
    CAST(%(response)s AS text[]), CAST(%(eid)s AS bigint[]), CAST(%(next_step)s AS int[]),
    CAST(%(due)s AS timestamptz[]), CAST(%(finish)s AS boolean[]), CAST(%(audit)s AS boolean[]),
    CAST(%(status)s AS text[]), CAST(%(reason)s AS text[]))
    AS v(mid, code, response, eid, next_step, due, finish, audit, status, reason)
), answered AS (
  UPDATE touches t SET state = 'accepted', accepted_at = %(now)s, smtp_code = v.code,
    smtp_response = v.response
  FROM v WHERE t.message_id = v.mid
), audited AS (
  INSERT INTO status_changes (enrollment_id, lead_id, old, new, reason, at)
  SELECT e.id, e.lead_id, e.status, v.status, v.reason, %(now)s
  FROM v JOIN enrollments e ON e.id = v.eid
  WHERE v.audit AND e.claimed_by = %(worker)s AND e.status <> v.status
), moved AS (
  UPDATE enrollments e SET next_step = v.next_step, last_touch_at = %(now)s, attempts = 0,
    updated_at = %(now)s,
    next_due_at = CASE WHEN e.claimed_by = %(worker)s THEN v.due
      WHEN v.finish THEN e.next_due_at
      WHEN e.status IN ('active', 'waiting') THEN CASE WHEN e.next_due_at > v.due
        THEN e.next_due_at ELSE v.due END
      ELSE e.next_due_at END,
    status = CASE WHEN e.claimed_by = %(worker)s THEN v.status ELSE e.status END,
    status_reason = CASE WHEN e.claimed_by = %(worker)s
      THEN CASE WHEN v.finish THEN v.reason END ELSE e.status_reason END,
    claimed_until = CASE WHEN e.claimed_by = %(worker)s THEN NULL ELSE e.claimed_until END,
    claimed_by = CASE WHEN e.claimed_by = %(worker)s THEN NULL ELSE e.claimed_by END
  FROM v WHERE e.id = v.eid
), handed AS (
  UPDATE touches SET state = 'handed_over', handed_at = %(now)s
  WHERE message_id = ANY(CAST(%(hand)s AS text[])) AND state IN ('planned', 'handed_over')
    AND EXISTS (SELECT 1 FROM enrollments e WHERE e.id = touches.enrollment_id
                AND e.claimed_by = %(worker)s AND e.status IN ('active', 'waiting'))
  RETURNING message_id
), withdrawn AS (
  UPDATE touches SET state = 'cancelled'
  WHERE message_id = ANY(CAST(%(hand)s AS text[])) AND state = 'planned'
    AND message_id NOT IN (SELECT message_id FROM handed)
), released AS (
  UPDATE enrollments SET claimed_by = NULL, claimed_until = NULL
  WHERE claimed_by = %(worker)s AND id NOT IN (SELECT eid FROM v) AND id IN (
    SELECT enrollment_id FROM touches WHERE message_id = ANY(CAST(%(hand)s AS text[]))
    AND message_id NOT IN (SELECT message_id FROM handed))
)
SELECT message_id FROM handed
"""


def conninfo(engine: Engine) -> str:
    """The libpq connection string of a PostgreSQL engine (with its password: never log it)."""
    return engine.url.set(drivername="postgresql").render_as_string(hide_password=False)


def group_params(worker_id: str, outcomes: Sequence[Outcome], hand_over: Sequence[str],
                 now: datetime) -> dict[str, Any]:
    """``GROUP``'s parameters: one array per column, one element per answer (each ``fast``)."""
    cols: dict[str, list[Any]] = {k: [] for k in COLUMNS}
    for o in outcomes:
        c = o.change
        assert c is not None
        move = move_of(c, now)
        for key, value in zip(COLUMNS, (
                o.message_id, o.code, o.response[:2000], c.enrollment_id, c.next_step,
                move.due, move.finish, move.audit, move.status, move.reason), strict=True):
            cols[key].append(value)
    return {**cols, "now": now, "worker": worker_id, "hand": list(hand_over)}


class LoopRecords:
    """``record`` as a coroutine, for the ledger to await on the event loop (PostgreSQL).

    Args:
        rows: the sending store: the other groups, the clock, whether events are written.
        dsn: where the loop's own connection goes (``conninfo``).
    """

    def __init__(self, rows: SendingRows, dsn: str) -> None:
        self.rows = rows
        self.dsn = dsn
        self.conn: psycopg.AsyncConnection[Any] | None = None
        self.grouped = self.threaded = 0  # groups written each way (tests, the benchmark)

    async def record(self, worker_id: str, outcomes: Sequence[Outcome],
                     hand_over: Sequence[str]) -> set[str]:
        """As ``SendingRows.record``: the message ids that may be handed over."""
        if self.rows.emitting or not all(fast(o) for o in outcomes):
            self.threaded += 1
            return await asyncio.to_thread(self.rows.record, worker_id, outcomes, hand_over)
        try:
            if self.conn is None or self.conn.closed:
                self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True,
                                                                  options=PLANNER)
            params = group_params(worker_id, outcomes, hand_over, self.rows.now())
            async with self.conn.cursor() as cur:
                await cur.execute(GROUP, params, prepare=True)
                allowed = {row[0] for row in await cur.fetchall()}
        except psycopg.Error as exc:
            await self.close()  # a new connection for the next group
            raise StoreError(f"database error: {exc}") from exc
        self.grouped += 1
        return allowed

    async def close(self) -> None:
        """Close the loop's connection (the worker is stopping, or it failed)."""
        conn, self.conn = self.conn, None
        if conn is not None:
            with contextlib.suppress(psycopg.Error):
                await conn.close()
