"""Read-side rows for the people commands (`leads list`, `lead show`, `export`), composed
over a store's session factory instead of mixed into ``Database``: the commands ask this
class, and SQLAlchemy stays in the adapter."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from worker.adapters.db import models as m


@dataclass(frozen=True)
class LeadEnrollment:
    """One line of `leads list`: a lead and one of its enrolments (None without any)."""

    email: str
    campaign: str | None
    status: str | None
    next_step: int | None
    next_due_at: datetime | None


class PeopleRows:
    """Queries about people for the command line.

    Args:
        session: opens one session (a transaction) on the database, e.g. ``Database.session``.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.session = session

    @staticmethod
    def columns(row: Any) -> dict[str, Any]:
        """Every column of a stored row (``lead_row``, ``lead_history``), JSON-ready."""
        return row_columns(row)

    def lead_enrollments(self, campaign: str | None, status: str | None,
                         limit: int) -> list[LeadEnrollment]:
        """Leads with their enrolments, by address, at most ``limit`` lines; filtered by
        campaign and enrolment status when given."""
        with self.session() as s:
            query = (select(m.Lead.email, m.Enrollment.campaign, m.Enrollment.status,
                            m.Enrollment.next_step, m.Enrollment.next_due_at)
                     .join(m.Enrollment, m.Enrollment.lead_id == m.Lead.id, isouter=True)
                     .order_by(m.Lead.email, m.Enrollment.id).limit(limit))
            if campaign:
                query = query.where(m.Enrollment.campaign == campaign)
            if status:
                query = query.where(m.Enrollment.status == status)
            return [LeadEnrollment(r.email, r.campaign, r.status, r.next_step, r.next_due_at)
                    for r in s.execute(query).all()]


def row_columns(row: Any) -> dict[str, Any]:
    """Every column of a stored row, by column name, JSON-ready (dates as ISO text)."""
    out: dict[str, Any] = {}
    for attr in inspect(row).mapper.column_attrs:
        value = getattr(row, attr.key)
        out[attr.columns[0].name] = value.isoformat() if isinstance(value, date) else value
    return out
