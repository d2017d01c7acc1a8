"""Tasks for a lead's owner that a reply's intent asks for ("Answer NAME: interested"),
composed over a store's session factory (not mixed into ``Database``).

A task is a ``touches`` row of kind ``task`` like a campaign's task step, so ``nurture
tasks``, the digest and ``tasks done`` treat both alike; its step is ``reply:INTENT``.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import datetime

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
                       text: str, owner: str | None, due_at: datetime, now: datetime) -> int:
        """An open task on the lead, filed under the enrolment the reply ended."""
        with self.session() as s:
            touch = m.Touch(enrollment_id=enrollment_id, lead_id=lead_id, campaign=campaign,
                            step_id=f"reply:{kind}"[:128], step_index=-1, kind="task",
                            state="open", task_kind=kind[:16], task_text=text, owner=owner,
                            due_at=due_at, planned_at=due_at, created_at=now)
            s.add(touch)
            s.flush()
            return int(touch.id)
