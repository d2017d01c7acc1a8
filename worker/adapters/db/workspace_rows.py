"""The workspace's rows (issue 17): sign-in links, sessions, who did what, and the reads
behind its pages. Composed over a store's session factory (like ``PeopleRows``), so the
workspace never sees ``Database`` and SQLAlchemy stays in the adapter.

Every read that lists leads, tasks or replies takes ``owner``: the signed-in rep's address,
or None for a manager (everyone's)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import median
from typing import Any

from sqlalchemy import ForeignKey, String, Text, case, func, or_, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from worker.adapters.db import models as m

T, IN, L, E = m.Touch, m.Inbound, m.Lead, m.Enrollment


class LoginToken(m.Base):
    __tablename__ = "workspace_login_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class SessionRow(m.Base):
    __tablename__ = "workspace_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class ActionRow(m.Base):
    """One thing a person did from the workspace, and who."""

    __tablename__ = "workspace_actions"

    id: Mapped[int] = mapped_column(m.ID, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(32))
    detail: Mapped[str | None] = mapped_column(Text)
    inbound_id: Mapped[int | None]
    touch_id: Mapped[int | None]
    at: Mapped[datetime]


@dataclass(frozen=True)
class Reply:
    """A human reply waiting for its lead's owner."""

    id: int
    lead_id: int
    lead: str
    subclass: str | None
    text: str
    step: str | None
    received_at: datetime


@dataclass(frozen=True)
class Task:
    """An open task with its lead."""

    id: int
    lead_id: int
    lead: str
    timezone: str | None
    kind: str | None
    text: str | None
    step: str
    due_at: datetime | None


@dataclass(frozen=True)
class LeadLine:
    """A line of the leads list."""

    id: int
    email: str
    name: str
    company: str | None
    owner: str | None


@dataclass(frozen=True)
class RepFigures:
    """One rep's line on the Team page."""

    owner: str
    open_tasks: int
    overdue: int
    replies_waiting: int
    median_reply_to_done_h: float | None


def display_name(first: str | None, last: str | None, email: str) -> str:
    """The lead's name, or its address when it has none."""
    return " ".join(x for x in (first, last) if x) or email


class WorkspaceRows:
    """The workspace's reads and writes.

    Args:
        session: opens one session (a transaction), e.g. ``Database.session``.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.session = session

    # --- sign-in ------------------------------------------------------------------------------

    def owns_leads(self, email: str) -> bool:
        """Whether any lead has this owner (owners are team members)."""
        with self.session() as s:
            return s.scalar(select(L.id).where(func.lower(L.owner) == email).limit(1)) is not None

    def add_login_token(self, token_hash: str, email: str, now: datetime,
                        expires_at: datetime) -> None:
        with self.session() as s:
            s.add(LoginToken(token_hash=token_hash, email=email, created_at=now,
                             expires_at=expires_at))

    def use_login_token(self, token_hash: str, now: datetime) -> str | None:
        """The token's address if it is unused and unexpired, marking it used (at most one
        caller wins); None otherwise."""
        with self.session() as s:
            done = s.execute(update(LoginToken).where(
                LoginToken.token_hash == token_hash, LoginToken.used_at.is_(None),
                LoginToken.expires_at > now).values(used_at=now))
            if done.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return s.scalar(select(LoginToken.email).where(LoginToken.token_hash == token_hash))

    def add_session(self, token_hash: str, email: str, now: datetime,
                    expires_at: datetime) -> None:
        with self.session() as s:
            s.add(SessionRow(token_hash=token_hash, email=email, created_at=now,
                             expires_at=expires_at))

    def session_email(self, token_hash: str, now: datetime) -> str | None:
        with self.session() as s:
            return s.scalar(select(SessionRow.email).where(
                SessionRow.token_hash == token_hash, SessionRow.expires_at > now))

    def end_session(self, token_hash: str) -> None:
        with self.session() as s:
            s.query(SessionRow).filter(SessionRow.token_hash == token_hash).delete()

    # --- who may see what ---------------------------------------------------------------------

    def lead_owner(self, lead_id: int) -> tuple[bool, str | None]:
        """(exists, owner) of a lead."""
        with self.session() as s:
            row = s.execute(select(L.owner).where(L.id == lead_id)).first()
            return (row is not None, (row[0] or "").lower() or None if row else None)

    def task_lead(self, touch_id: int) -> int | None:
        with self.session() as s:
            return s.scalar(select(T.lead_id).where(T.id == touch_id, T.kind == "task"))

    def inbound_lead(self, inbound_id: int) -> int | None:
        with self.session() as s:
            return s.scalar(select(IN.lead_id).where(IN.id == inbound_id))

    # --- actions ------------------------------------------------------------------------------

    def log_action(self, lead_id: int, actor: str, action: str, detail: str | None,
                   now: datetime, inbound_id: int | None = None,
                   touch_id: int | None = None) -> None:
        """Record who did what to a lead (``lead show`` prints it as "done by ...")."""
        with self.session() as s:
            s.add(ActionRow(lead_id=lead_id, actor=actor, action=action, detail=detail,
                            inbound_id=inbound_id, touch_id=touch_id, at=now))

    def actions_of(self, lead_id: int) -> list[ActionRow]:
        with self.session() as s:
            return list(s.scalars(select(ActionRow).where(ActionRow.lead_id == lead_id)
                                  .order_by(ActionRow.at, ActionRow.id)))

    def snooze(self, touch_id: int, until: datetime) -> None:
        """Move an open task's due time."""
        with self.session() as s:
            s.execute(update(T).where(T.id == touch_id, T.state == "open").values(due_at=until))

    # --- Today --------------------------------------------------------------------------------

    def replies_waiting(self, owner: str | None, limit: int = 50) -> list[Reply]:
        """Human replies nobody has marked handled, interested first, newest first."""
        # two index-ordered reads (interested, then the rest) instead of sorting every reply
        interested = self._replies(owner, limit, IN.subclass == "interested")
        rest = self._replies(owner, limit - len(interested),
                             or_(IN.subclass.is_(None), IN.subclass != "interested"))
        return interested + rest

    def _replies(self, owner: str | None, limit: int, which: Any) -> list[Reply]:
        if limit <= 0:
            return []
        handled = select(ActionRow.id).where(ActionRow.inbound_id == IN.id).exists()
        query = (select(IN.id, IN.lead_id, L.email, L.first_name, L.last_name, IN.subclass,
                        IN.excerpt, T.step_id, IN.received_at)
                 .join(L, L.id == IN.lead_id).join(T, T.id == IN.touch_id, isouter=True)
                 .where(IN.cls == "human", which, ~handled)
                 .order_by(IN.received_at.desc()).limit(limit))
        if owner is not None:
            query = query.where(func.lower(L.owner) == owner)
        with self.session() as s:
            return [Reply(r.id, r.lead_id, display_name(r.first_name, r.last_name, r.email),
                          r.subclass, r.excerpt or "", r.step_id, r.received_at)
                    for r in s.execute(query)]

    def open_tasks(self, owner: str | None, limit: int = 100) -> list[Task]:
        """Open tasks, soonest (so overdue) first."""
        query = (select(T.id, T.lead_id, L.email, L.first_name, L.last_name, L.timezone,
                        T.task_kind, T.task_text, T.campaign, T.step_id, T.due_at)
                 .join(L, L.id == T.lead_id).where(T.kind == "task", T.state == "open")
                 .order_by(T.due_at, T.id).limit(limit))
        if owner is not None:
            query = query.where(func.lower(T.owner) == owner)
        with self.session() as s:
            return [Task(r.id, r.lead_id, display_name(r.first_name, r.last_name, r.email),
                         r.timezone, r.task_kind, r.task_text, f"{r.campaign} / {r.step_id}",
                         r.due_at) for r in s.execute(query)]

    # --- Lead ---------------------------------------------------------------------------------

    def lead(self, lead_id: int) -> dict[str, Any] | None:
        """The lead and everything about it, oldest first."""
        with self.session() as s:
            lead = s.get(L, lead_id)
            if lead is None:
                return None

            def rows(model: Any, *order: Any) -> list[Any]:
                return list(s.scalars(select(model).where(model.lead_id == lead_id)
                                      .order_by(*order)))
            return {"lead": lead, "enrollments": rows(E, E.id), "touches": rows(T, T.id),
                    "inbound": rows(IN, IN.received_at, IN.id),
                    "status_changes": rows(m.StatusChange, m.StatusChange.at),
                    "events": rows(m.Event, m.Event.at), "actions": rows(ActionRow, ActionRow.at)}

    # --- Leads --------------------------------------------------------------------------------

    def search(self, owner: str | None, text: str, campaign: str, status: str,
               owner_filter: str, page: int, per_page: int = 50) -> tuple[list[LeadLine], bool]:
        """A page of leads by id, and whether there is a next page."""
        query = select(L.id, L.email, L.first_name, L.last_name, L.company, L.owner)
        if owner is not None:
            query = query.where(func.lower(L.owner) == owner)
        elif owner_filter:
            query = query.where(func.lower(L.owner) == owner_filter.lower())
        if text:
            like = f"%{text.lower()}%"
            query = query.where(or_(L.email.like(like), func.lower(L.company).like(like),
                                    func.lower(L.first_name + " " + L.last_name).like(like),
                                    func.lower(L.first_name).like(like),
                                    func.lower(L.last_name).like(like)))
        if campaign or status:
            sub = select(E.id).where(E.lead_id == L.id)
            if campaign:
                sub = sub.where(E.campaign == campaign)
            if status:
                sub = sub.where(E.status == status)
            query = query.where(sub.exists())
        query = query.order_by(L.id.desc()).offset(page * per_page).limit(per_page + 1)
        with self.session() as s:
            found = [LeadLine(r.id, r.email, display_name(r.first_name, r.last_name, r.email),
                              r.company, r.owner) for r in s.execute(query)]
        return found[:per_page], len(found) > per_page

    # --- Team and campaigns -------------------------------------------------------------------

    def team(self, owners: list[str], now: datetime) -> list[RepFigures]:
        """Per owner: open and overdue tasks, replies waiting, median reply-to-done hours
        (three grouped reads, whatever the team's size)."""
        who = func.lower(T.owner)
        with self.session() as s:
            tasks = {o: (n, late or 0) for o, n, late in s.execute(
                select(who, func.count(), func.sum(case((T.due_at < now, 1), else_=0)))
                .where(T.kind == "task", T.state == "open").group_by(who))}
            handled = select(ActionRow.id).where(ActionRow.inbound_id == IN.id).exists()
            lead_owner = func.lower(L.owner)
            waiting: dict[str, int] = {o: n for o, n in s.execute(
                select(lead_owner, func.count()).select_from(IN).join(L, L.id == IN.lead_id)
                .where(IN.cls == "human", ~handled).group_by(lead_owner))}
            hours: dict[str, list[float]] = {}
            for o, received, done in s.execute(
                    select(lead_owner, IN.received_at, func.min(T.done_at)).select_from(IN)
                    .join(L, L.id == IN.lead_id)
                    .join(T, (T.lead_id == IN.lead_id) & (T.kind == "task")
                          & (T.done_at >= IN.received_at))
                    .where(IN.cls == "human").group_by(IN.id, lead_owner, IN.received_at)):
                if o and done is not None:  # min() keeps the column's type: an aware time
                    hours.setdefault(o, []).append((done - received) / timedelta(hours=1))
        return [RepFigures(o, tasks.get(o, (0, 0))[0], tasks.get(o, (0, 0))[1],
                           waiting.get(o, 0), median(hours[o]) if o in hours else None)
                for o in owners]

    def owners(self) -> list[str]:
        """Every lead owner, by address."""
        with self.session() as s:
            return sorted(o for o in s.scalars(
                select(func.lower(L.owner)).where(func.lower(L.owner).is_not(None)).distinct())
                if o)

    def campaign_statuses(self) -> dict[str, dict[str, int]]:
        """Per campaign, how many enrolments are in each status."""
        with self.session() as s:
            out: dict[str, dict[str, int]] = {}
            for slug, status, n in s.execute(select(E.campaign, E.status, func.count())
                                             .group_by(E.campaign, E.status)):
                out.setdefault(slug, {})[status] = n
            return out
