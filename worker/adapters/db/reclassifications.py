"""Corrections of an inbound message's class by a person (``nurture inbox reclassify``, the
workspace's Lead page; issue 14), and the reads and undos they need. A room over the shared
``Connection`` (it needs the keyed address hash to lift a suppression)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from worker.adapters.db import models as m
from worker.adapters.db.base import Room
from worker.domain.leads import spellings
from worker.ports_store import InboundRecord, Reclassification


class ReclassificationRow(m.Base):
    """One correction: who, when, the old and new class, what was undone and done."""

    __tablename__ = "reclassifications"

    id: Mapped[int] = mapped_column(m.ID, primary_key=True)
    inbound_id: Mapped[int] = mapped_column(ForeignKey("inbound.id", ondelete="CASCADE"),
                                            index=True)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"),
                                                index=True)
    old_class: Mapped[str] = mapped_column(String(16))
    old_subclass: Mapped[str | None] = mapped_column(String(32))
    new_class: Mapped[str] = mapped_column(String(16))
    new_subclass: Mapped[str | None] = mapped_column(String(32))
    by: Mapped[str] = mapped_column(String(320))
    undone: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


def _record(row: m.Inbound) -> InboundRecord:
    return InboundRecord(row.id, row.lead_id, row.cls, row.subclass, row.reason or "",
                         row.return_date, row.from_addr, row.subject or "", row.excerpt or "",
                         row.message_id, row.received_at, row.created_at)


def _correction(row: ReclassificationRow) -> Reclassification:
    return Reclassification(row.inbound_id, row.old_class, row.old_subclass, row.new_class,
                            row.new_subclass, row.by, row.at, row.undone or "",
                            row.action or "")


class Reclassifications(Room):
    """Reads an inbound message, lifts a suppression, reads an enrolment's last status change,
    rewrites the message's class and records the correction."""

    def inbound_message(self, inbound_id: int) -> InboundRecord | None:
        """The stored inbound message, or None."""
        with self.session() as s:
            row = s.get(m.Inbound, inbound_id)
            return _record(row) if row is not None else None

    def lift_suppression(self, email: str, reasons: Sequence[str]) -> bool:
        """Remove the address's own suppression (not a domain's) when its reason is one of
        ``reasons``; True if one was removed."""
        hashes = [self.email_hash(form) for form in spellings(email)]
        with self.session() as s:
            gone = s.execute(delete(m.Suppression).where(
                m.Suppression.email_hash.in_(hashes), m.Suppression.reason.in_(list(reasons))))
            return bool(gone.rowcount)  # type: ignore[attr-defined]

    def last_status_change(self, enrollment_id: int) -> tuple[str | None, str] | None:
        """(old, new) of the enrolment's latest status change, or None."""
        with self.session() as s:
            row = s.execute(select(m.StatusChange.old, m.StatusChange.new).where(
                m.StatusChange.enrollment_id == enrollment_id)
                .order_by(m.StatusChange.at.desc(), m.StatusChange.id.desc()).limit(1)).first()
            return (row.old, row.new) if row is not None else None

    def record_reclassification(self, record: InboundRecord, new_class: str,
                                new_subclass: str | None, by: str, undone: str,
                                action: str, now: datetime) -> None:
        """Rewrite the message's class (reports count the corrected one) and keep the old
        one, who and when in ``reclassifications``; one transaction."""
        with self.session() as s:
            s.execute(update(m.Inbound).where(m.Inbound.id == record.id).values(
                cls=new_class, subclass=new_subclass,
                action=f"reclassified by {by}: {action}"[:4000]))
            s.add(ReclassificationRow(
                inbound_id=record.id, lead_id=record.lead_id, old_class=record.cls,
                old_subclass=record.subclass, new_class=new_class, new_subclass=new_subclass,
                by=by[:320], undone=undone, action=action, at=now))

    def reclassifications_of(self, lead_id: int) -> list[Reclassification]:
        """A lead's corrections, oldest first."""
        with self.session() as s:
            return [_correction(r) for r in s.scalars(
                select(ReclassificationRow).where(ReclassificationRow.lead_id == lead_id)
                .order_by(ReclassificationRow.at, ReclassificationRow.id))]
