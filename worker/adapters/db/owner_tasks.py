"""Tasks for a lead's owner that a reply's intent asks for ("Answer NAME: interested"),
composed over a store's session factory (not mixed into ``Database``).

A task is a ``touches`` row of kind ``task`` like a campaign's task step, so ``nurture
tasks``, the digest and ``tasks done`` treat both alike; its step is ``reply:INTENT``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.adapters.db import models as m


class OwnerTasks:
    """Writes owner tasks.

    Args:
        session: opens one session (a transaction) on the database, e.g. ``Database.session``.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.session = session

    def add_owner_task(self, lead_id: int, enrollment_id: int, campaign: str, kind: str,
                       text: str, owner: str | None, due_at: datetime, now: datetime,
                       key: str = "") -> int:
        """An open task on the lead, filed under the enrolment the reply ended.

        The step id is ``reply:KIND`` (``reply:KIND:KEY`` for one of several, e.g. each
        referred address): a touch is unique per enrolment and step, so the same task asked
        again while it is open is that task (a retried message adds nothing), and once it is
        done a new one is ``...#2``, ``#3``.
        """
        base = f"reply:{kind}" + (f":{hashlib.sha256(key.encode()).hexdigest()[:12]}"
                                  if key else "")
        with self.session() as s:
            taken = dict(s.execute(select(m.Touch.step_id, m.Touch.id).where(
                m.Touch.enrollment_id == enrollment_id, m.Touch.step_id.startswith(base),
                m.Touch.state == "open")).all())
            if base in taken or any(k.startswith(base + "#") for k in taken):
                return int(next(iter(taken.values())))
            used = set(s.scalars(select(m.Touch.step_id).where(
                m.Touch.enrollment_id == enrollment_id, m.Touch.step_id.startswith(base))))
            step_id, n = base, 1
            while step_id in used:
                n += 1
                step_id = f"{base}#{n}"
            touch = m.Touch(enrollment_id=enrollment_id, lead_id=lead_id, campaign=campaign,
                            step_id=step_id, step_index=-1, kind="task",
                            state="open", task_kind=kind[:16], task_text=text, owner=owner,
                            due_at=due_at, planned_at=due_at, created_at=now)
            s.add(touch)
            s.flush()
            return int(touch.id)
