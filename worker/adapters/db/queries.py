"""Read-side queries for the insight commands (report, lead show, tasks, status, export) and
the erasure that `nurture forget` adds to ``Store.delete_lead``.

Counts are done by the database; only small sets (unsubscribed and completed enrolments,
first replies) come back row by row. Nothing here decides what a number means: that is
``worker.commands.report``'s job, which documents each definition.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Date, Select, String, and_, cast, delete, func, literal, or_, select, true, update
from sqlalchemy.orm import aliased

from worker.adapters.db import models as m
from worker.adapters.db.base import Room

E, T, IN = m.Enrollment, m.Touch, m.Inbound  # the three tables a report joins
SENT = ("accepted", "handed_over")        # an email that reached (or may have reached) a server
TOUCHED = (*SENT, "open", "done")           # a touch the lead or its owner actually got


@dataclass
class ReportRows:
    """Raw numbers for `nurture report`, keyed by campaign slug (and step id)."""

    touches: Sequence[Any] = ()        # campaign, step_id, kind, state, n
    step_order: Sequence[Any] = ()     # campaign, step_id, step_index, first
    inbound: Sequence[Any] = ()        # campaign, step_id, cls, n (touches)
    bounces: Sequence[Any] = ()        # campaign, step_id, touch id, kind
    by_touch: Sequence[Any] = ()       # campaign, touch_number, n
    enrollments: Sequence[Any] = ()    # campaign, status, n
    touched: Sequence[Any] = ()        # campaign, n (enrolments)
    replied: Sequence[Any] = ()        # campaign, n (enrolments)
    completed_at: Sequence[Any] = ()   # campaign, step_id, n
    unsubscribed: Sequence[Any] = ()   # enrollment_id, campaign, step, at
    first_reply: Sequence[Any] = ()    # campaign, first sent, first reply
    moved: dict[str, int] = field(default_factory=dict)     # campaign -> leads moved on
    sends_per_day: Sequence[Any] = ()  # campaign, day, n
    replies_per_day: Sequence[Any] = ()  # campaign, day, n
    intents: Sequence[Any] = ()        # campaign, step_id, intent or None, n (issue 14)


def _in(column: Any, campaigns: Sequence[str] | None) -> Any:
    return column.in_(list(campaigns)) if campaigns is not None else true()


class Reports(Room):

    # --- report -----------------------------------------------------------------------------

    """Read-only rows for the reports and the people/status commands."""
    def _day(self, column: Any) -> Any:
        """The UTC calendar day of a timestamp column, on either backend."""
        if self.is_sqlite:
            return func.date(column)
        return cast(func.timezone("UTC", column), Date)

    def report_rows(self, campaigns: Sequence[str] | None = None,
                    on_finish: dict[str, str] | None = None) -> ReportRows:
        """Every number the report needs, for ``campaigns`` (None: all)."""
        sent_at = func.coalesce(T.accepted_at, T.handed_at)
        # A reply's owner task (step_index -1, issue 14) is no step of the campaign.
        ours = and_(_in(T.campaign, campaigns), T.step_index >= 0)
        human = IN.cls == "human"

        def answered(*columns: Any) -> Select[Any]:
            """Inbound messages joined to the mail of ours they answer."""
            return select(*columns).select_from(IN).join(T, T.id == IN.touch_id).where(ours)

        with self.session() as s:
            r = ReportRows(
                touches=s.execute(select(T.campaign, T.step_id, T.kind, T.state, func.count())
                                  .where(ours).group_by(T.campaign, T.step_id, T.kind, T.state)
                                  ).all(),
                step_order=s.execute(
                    select(T.campaign, T.step_id, func.min(T.step_index), func.min(T.created_at))
                    .where(ours).group_by(T.campaign, T.step_id)).all(),
                inbound=s.execute(answered(T.campaign, T.step_id, IN.cls,
                                           func.count(func.distinct(T.id)))
                                  .group_by(T.campaign, T.step_id, IN.cls)).all(),
                bounces=[*s.execute(answered(T.campaign, T.step_id, T.id,
                                             func.coalesce(IN.subclass, "soft"))
                                    .where(IN.cls == "bounce")).all(),
                         *s.execute(select(T.campaign, T.step_id, T.id, literal("smtp"))
                                    .where(T.state == "bounced", ours)).all()],
                by_touch=s.execute(answered(T.campaign, T.touch_number,
                                            func.count(func.distinct(T.id)))
                                   .where(human, T.touch_number.is_not(None))
                                   .group_by(T.campaign, T.touch_number)).all(),
                enrollments=s.execute(select(E.campaign, E.status, func.count())
                                      .where(_in(E.campaign, campaigns))
                                      .group_by(E.campaign, E.status)).all(),
                touched=s.execute(select(T.campaign, func.count(func.distinct(T.enrollment_id)))
                                  .where(T.state.in_(TOUCHED), ours,
                                         or_(T.kind == "task", T.state.in_(SENT)))
                                  .group_by(T.campaign)).all(),
                replied=s.execute(answered(T.campaign, func.count(func.distinct(T.enrollment_id)))
                                  .where(human).group_by(T.campaign)).all(),
                completed_at=s.execute(self._completed_at(campaigns)).all(),
                unsubscribed=self._unsubscribed(s, campaigns),
                first_reply=self._first_replies(s, campaigns),
                intents=s.execute(answered(T.campaign, T.step_id, IN.subclass,
                                           func.count(func.distinct(T.id)))
                                  .where(human).group_by(T.campaign, T.step_id, IN.subclass)
                                  ).all(),
            )
            for slug, target in (on_finish or {}).items():
                if campaigns is None or slug in campaigns:
                    r.moved[slug] = self._moved(s, slug, target)
            day = self._day(sent_at)
            r.sends_per_day = s.execute(
                select(T.campaign, day, func.count())
                .where(T.kind == "email", T.state.in_(SENT), ours)
                .group_by(T.campaign, day)).all()
            rday = self._day(IN.received_at)
            r.replies_per_day = s.execute(
                answered(T.campaign, rday, func.count(func.distinct(T.id))).where(human)
                .group_by(T.campaign, rday)).all()
        return r

    @staticmethod
    def _completed_at(campaigns: Sequence[str] | None) -> Select[Any]:
        """Completed enrolments counted at the last step that touched the lead."""
        last = (select(T.enrollment_id.label("eid"), func.max(T.step_index).label("mx"))
                .join(E, E.id == T.enrollment_id)
                .where(E.status == "completed", T.state.in_(TOUCHED), _in(E.campaign, campaigns))
                .group_by(T.enrollment_id).subquery())
        return (select(T.campaign, T.step_id, func.count())  # type: ignore[return-value]
                .join(last, (last.c.eid == T.enrollment_id) & (last.c.mx == T.step_index))
                .where(T.state.in_(TOUCHED)).group_by(T.campaign, T.step_id))

    def _unsubscribed(self, s: Any, campaigns: Sequence[str] | None) -> list[Any]:
        """(enrollment id, campaign, step id or None) per enrolment that ended unsubscribed:
        the step whose mail the unsubscribe (or complaint) answered, else the last mail sent."""
        asked = or_(IN.cls == "unsubscribe", (IN.cls == "other") & (IN.subclass == "complaint"))
        by_mail = s.execute(
            select(T.enrollment_id, T.step_id, IN.received_at).select_from(IN)
            .join(T, T.id == IN.touch_id).join(E, E.id == T.enrollment_id)
            .where(E.status == "unsubscribed", _in(E.campaign, campaigns), asked)
            .order_by(IN.received_at.desc())).all()
        answered = {row[0]: row[1] for row in by_mail}  # the earliest wins (ordered newest first)
        last_sent = s.execute(
            select(T.enrollment_id, T.step_id).join(E, E.id == T.enrollment_id)
            .where(E.status == "unsubscribed", _in(E.campaign, campaigns), T.kind == "email",
                   T.state.in_(SENT))
            .order_by(func.coalesce(T.accepted_at, T.handed_at), T.id)).all()
        latest = {row[0]: row[1] for row in last_sent}
        ids = s.execute(select(E.id, E.campaign).where(
            E.status == "unsubscribed", _in(E.campaign, campaigns))).all()
        return [(eid, camp, answered.get(eid, latest.get(eid))) for eid, camp in ids]

    def _first_replies(self, s: Any, campaigns: Sequence[str] | None) -> list[Any]:
        """(campaign, first mail sent, first human reply) per enrolment that replied."""
        reply = (select(T.enrollment_id.label("eid"), func.min(IN.received_at).label("at"))
                 .select_from(IN).join(T, T.id == IN.touch_id)
                 .where(IN.cls == "human", _in(T.campaign, campaigns))
                 .group_by(T.enrollment_id).subquery())
        t2 = aliased(m.Touch)
        first = (select(t2.enrollment_id.label("eid"),
                        func.min(func.coalesce(t2.accepted_at, t2.handed_at)).label("at"))
                 .where(t2.kind == "email", t2.state.in_(SENT))
                 .group_by(t2.enrollment_id).subquery())
        return list(s.execute(select(E.campaign, first.c.at, reply.c.at)
                              .join(reply, reply.c.eid == E.id)
                              .join(first, first.c.eid == E.id)).all())

    def _moved(self, s: Any, campaign: str, target: str) -> int:
        """Completed enrolments whose lead joined ``target`` when (or after) they completed."""
        done = aliased(m.StatusChange)
        nxt = aliased(m.Enrollment)
        return int(s.scalar(
            select(func.count(func.distinct(E.id)))
            .join(done, (done.enrollment_id == E.id) & (done.new == "completed"))
            .join(nxt, (nxt.lead_id == E.lead_id) & (nxt.campaign == target)
                  & (nxt.enrolled_at >= done.at))
            .where(E.campaign == campaign, E.status == "completed")) or 0)

    def campaigns_with_data(self) -> list[str]:
        """The campaigns that have enrolments."""
        with self.session() as s:
            return sorted(set(s.scalars(select(E.campaign).distinct()))
                          | set(s.scalars(select(T.campaign).distinct())))

    # --- one lead -------------------------------------------------------------------------------

    def lead_row(self, email: str) -> m.Lead | None:
        """One lead with its enrolments, for `nurture people show`."""
        with self.session() as s:
            return s.scalar(select(m.Lead).where(m.Lead.email == email.lower()))

    def lead_history(self, email: str, lead_id: int | None) -> dict[str, list[Any]]:
        """Everything stored about one address: its rows in every table, oldest first."""
        email = email.lower()
        lid = lead_id if lead_id is not None else -1
        with self.session() as s:
            def rows(model: Any, *order: Any) -> list[Any]:
                return list(s.scalars(select(model).where(model.lead_id == lid).order_by(*order)))
            return {
                "enrollments": rows(E, E.id),
                "touches": rows(T, T.id),
                "status_changes": rows(m.StatusChange, m.StatusChange.at, m.StatusChange.id),
                "events": rows(m.Event, m.Event.at, m.Event.id),
                "soft_bounces": rows(m.SoftBounce, m.SoftBounce.at),
                "inbound": list(s.scalars(select(IN).where(or_(
                    IN.lead_id == lid, func.lower(IN.from_addr) == email))
                    .order_by(IN.received_at, IN.id))),
                "notifications": list(s.scalars(select(m.Notification).where(
                    self._mentions(email, m.Notification.subject, m.Notification.body,
                                   m.Notification.to_addr)).order_by(m.Notification.id))),
                "suppression": list(s.scalars(select(m.Suppression).where(
                    m.Suppression.email_hash == self.email_hash(email)))),
            }

    @staticmethod
    def _mentions(email: str, *columns: Any) -> Any:
        return or_(*(func.lower(c).contains(email, autoescape=True) for c in columns))

    # --- tasks ----------------------------------------------------------------------------------

    def open_tasks(self, owner: str | None = None) -> list[tuple[m.Touch, str, str | None]]:
        """Open tasks with the lead's address and time zone, by owner then due date."""
        with self.session() as s:
            query = (select(T, m.Lead.email, m.Lead.timezone).join(m.Lead, m.Lead.id == T.lead_id)
                     .where(T.kind == "task", T.state == "open"))
            if owner:
                query = query.where(func.lower(T.owner) == owner.lower())
            # An interested lead's task comes first: answered within minutes (issue 14).
            query = query.order_by(T.owner.is_(None), T.owner, func.coalesce(T.task_kind, "") != "interested",
                                   T.due_at, T.id)
            return [(t, email, tz) for t, email, tz in s.execute(query).all()]

    def task_row(self, touch_id: int) -> tuple[m.Touch, str] | None:
        """One open task by id."""
        with self.session() as s:
            row = s.execute(select(T, m.Lead.email).join(m.Lead, m.Lead.id == T.lead_id)
                            .where(T.id == touch_id)).first()
            return (row[0], row[1]) if row else None

    # --- status ---------------------------------------------------------------------------------

    def ops_counts(self) -> dict[str, int]:
        """The counts `nurture status` prints."""
        with self.session() as s:
            return {
                "open_tasks": int(s.scalar(select(func.count()).where(
                    T.kind == "task", T.state == "open")) or 0),
                "unsent_notifications": int(s.scalar(select(func.count()).where(
                    m.Notification.sent_at.is_(None))) or 0),
                "failed_enrollments": int(s.scalar(select(func.count()).where(
                    E.status == "failed")) or 0),
            }

    # --- erasure ----------------------------------------------------------------------------------

    def erase_address(self, email: str, lead_id: int | None) -> dict[str, int]:
        """Run before ``delete_lead``: scrub what it would leave behind. Inbound records of
        the lead, from its address or naming it (a bounce report) keep only their class and
        action; notifications to or about it and stored API answers naming it are deleted;
        its suppression entry keeps only the keyed hash."""
        email = email.lower()
        counts: dict[str, int] = {}
        lid = lead_id if lead_id is not None else -1
        with self.session() as s:
            result = s.execute(update(IN).where(or_(
                IN.lead_id == lid, func.lower(IN.from_addr) == email,
                self._mentions(email, IN.excerpt, IN.subject, IN.reason)))
                .values(excerpt=None, subject=None, from_addr=None, reason=None, message_id=None,
                        return_date=None, lead_id=None, touch_id=None)
                .execution_options(synchronize_session=False))
            counts["inbound"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
            result = s.execute(delete(m.Notification).where(self._mentions(
                email, m.Notification.to_addr, m.Notification.subject, m.Notification.body))
                .execution_options(synchronize_session=False))
            counts["notifications"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
            result = s.execute(delete(m.IdempotencyKey).where(
                func.lower(cast(m.IdempotencyKey.response, String)).contains(
                    email, autoescape=True)).execution_options(synchronize_session=False))
            counts["api_answers"] = int(result.rowcount or 0)  # type: ignore[attr-defined]
            row = s.scalar(select(m.Suppression).where(
                m.Suppression.email_hash == self.email_hash(email)))
            if row is not None and (row.email or row.reason != "erased"):
                if row.reason != "erased":
                    row.source = f"forget (was: {row.reason})"
                row.email, row.reason = None, "erased"
                counts["suppression_anonymised"] = 1
        return counts

    def suppression_row(self, email: str) -> m.Suppression | None:
        """An address's suppression row, if any."""
        with self.session() as s:
            return s.scalar(select(m.Suppression).where(
                m.Suppression.email_hash == self.email_hash(email)))
