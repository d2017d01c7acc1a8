"""Use-case: a person corrects an inbound message's class (``nurture inbox reclassify``, the
workspace's Lead page; issue 14).

The correction is recorded (who, when, the old and new class), what the old class did is undone
where it can be (a suppression it caused is lifted; an enrolment it closed goes back to the
status it had, read from its latest status change, with a new due time) and the new class's
action is taken by the inbound use-case's own act path, as if the message had been read so.
What cannot be undone (a forwarded mail, a task already written) stays, and the action says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime

from worker.domain import schedule, sequence
from worker.domain.catalog import Catalog
from worker.domain.classify import Classification, ParsedMessage, parse_message
from worker.domain.intent import INTENTS, intent_of_message
from worker.domain.model import OPEN_STATUSES, InboundClass, Lead
from worker.errors import NotFound, UserError
from worker.ports import Clock, EnrollmentRow
from worker.ports_store import InboundRecord, InboxStore, ReclassifyStore
from worker.usecases.inbound import Inbound, Match

#: The subclasses each class may have (None: without one).
SUBCLASSES: dict[str, tuple[str | None, ...]] = {
    "human": (*INTENTS, None),
    "auto_reply": ("ooo", "autoresponder", "address_change", None),
    "bounce": ("hard", "soft", "policy"),
    "unsubscribe": (None,),
    "other": ("complaint", None),
}
#: What each class may have done: the suppression reasons it adds, the status it closes to.
_UNDO: dict[str, tuple[tuple[str, ...], str | None]] = {
    "human": ((), "replied"),
    "unsubscribe": (("unsubscribed",), "unsubscribed"),
    "bounce": (("bounced",), "bounced"),
    "other": (("complained",), "unsubscribed"),
    "auto_reply": ((), None),
}
_OPEN = {s.value for s in OPEN_STATUSES}


@dataclass(frozen=True)
class Reclassified:
    """What a correction did; ``changed`` is False for a no-op (the class it already had)."""

    inbound_id: int
    old: str
    new: str
    changed: bool
    undone: str = ""
    action: str = ""


def parse_target(text: str) -> tuple[str, str | None]:
    """``CLASS[/SUBCLASS]`` checked against the known classes; UserError names the allowed."""
    cls, _, sub = text.strip().lower().partition("/")
    if cls not in SUBCLASSES:
        raise UserError(f"unknown class {cls!r}: one of {', '.join(SUBCLASSES)}")
    allowed = SUBCLASSES[cls]
    subclass = sub or None
    if subclass not in allowed:
        names = ", ".join(a or "(none)" for a in allowed)
        raise UserError(f"unknown subclass {sub or '(none)'!r} for class {cls}: one of {names}")
    return cls, subclass


def label(cls: str, subclass: str | None) -> str:
    """``class/subclass`` as ``lead show`` prints it."""
    return cls + (f"/{subclass}" if subclass else "")


class Reclassify:
    """Corrects an inbound message's class.

    Args:
        store: leads and enrolments (``InboxStore``).
        rooms: the message, suppression lifting, status history, the record
            (``ReclassifyStore``).
        inbound: the inbound use-case whose ``act`` takes the new class's action.
        catalog: returns the current campaigns (a restored enrolment's due time).
        clock: the time of the correction.
    """

    def __init__(self, store: InboxStore, rooms: ReclassifyStore, inbound: Inbound,
                 catalog: Callable[[], Catalog], clock: Clock) -> None:
        self.store, self.rooms, self.inbound = store, rooms, inbound
        self.catalog, self.clock = catalog, clock

    def __call__(self, inbound_id: int, target: str, by: str) -> Reclassified:
        """Reclassify message ``inbound_id`` as ``target`` (``CLASS[/SUBCLASS]``) for ``by``."""
        cls, subclass = parse_target(target)
        record = self.rooms.inbound_message(inbound_id)
        if record is None:
            raise NotFound(f"no inbound message #{inbound_id}")
        old, new = label(record.cls, record.subclass), label(cls, subclass)
        if (record.cls, record.subclass) == (cls, subclass):
            return Reclassified(inbound_id, old, new, changed=False)
        lead = self.store.lead_by_id(record.lead_id) if record.lead_id else None
        undone, action = [], "none: no lead matched"
        if lead is not None:
            undone = self._undo(record, lead)
            action = self._act(record, lead, cls, subclass)
        now = self.clock.now()
        self.rooms.record_reclassification(record, cls, subclass, by, "; ".join(undone),
                                           action, now)
        return Reclassified(inbound_id, old, new, True, "; ".join(undone), action)

    # --- undo -----------------------------------------------------------------------------------

    def _undo(self, record: InboundRecord, lead: Lead) -> list[str]:
        reasons, closed_to = _UNDO.get(record.cls, ((), None))
        if record.cls == "other" and record.subclass != "complaint":
            reasons, closed_to = (), None
        if record.cls == "bounce" and record.subclass == "policy":
            reasons, closed_to = (), None
        done = []
        if reasons and self.rooms.lift_suppression(lead.email, reasons):
            done.append(f"suppression ({', '.join(reasons)}) lifted")
        if closed_to is not None:
            for row in self.store.enrollments_of(lead.id, statuses=[closed_to]):
                back = self._restore(row, lead, closed_to, record)
                if back:
                    done.append(back)
        return done

    def _restore(self, row: EnrollmentRow, lead: Lead, closed_to: str,
                 record: InboundRecord) -> str | None:
        """Back to the status it had when the latest change is the one this class makes."""
        change = self.rooms.last_status_change(row.id)
        if change is None or change[1] != closed_to or change[0] not in _OPEN:
            return None
        status = change[0]
        assert status is not None
        due = self._due(row, lead)
        self.store.set_enrollment(row.id, status=status, next_due_at=due,
                                  reason=f"reclassified #{record.id}: {closed_to} undone")
        return f"{row.campaign} {closed_to} -> {status}"

    def _due(self, row: EnrollmentRow, lead: Lead) -> datetime:
        """The next step's due time from the campaign (now when it is past or unknown)."""
        now = self.clock.now()
        camp = self.catalog().campaigns.get(row.campaign)
        if camp is None or camp.kind == "newsletter" or not 0 <= row.next_step < len(camp.steps):
            return now
        cal = schedule.calendar_for(camp.window, lead.timezone)
        due = sequence.step_due(camp, row.next_step, cal, row.enrolled_at, row.last_touch_at)
        return max(due, now)

    # --- the new action -------------------------------------------------------------------------

    def _act(self, record: InboundRecord, lead: Lead, cls: str, subclass: str | None) -> str:
        parsed = rebuild(record, lead)
        result = Classification(InboundClass(cls), subclass, f"reclassified as "
                                f"{label(cls, subclass)}", record.return_date)
        if cls == "human":
            # the intent's own reading (a date, referred addresses) when it agrees
            read = intent_of_message(parsed, self.inbound.ours(parsed, lead.email), lead.email)
            if read.intent == subclass:
                result = Classification(result.cls, subclass, result.reason,
                                        read.resume_on or record.return_date, read.referrals)
        match = Match(lead.id, self.store.last_email_to(lead.id), "reclassified")
        return self.inbound.act(parsed, result, match, record.received_at)


def rebuild(record: InboundRecord, lead: Lead) -> ParsedMessage:
    """A message made of the stored row: its sender, subject, id, date and new text."""
    msg = EmailMessage()
    msg["From"] = record.from_addr or lead.email
    msg["Subject"] = record.subject.replace("\r", " ").replace("\n", " ")[:900]
    if record.message_id:
        msg["Message-ID"] = f"<{record.message_id}>"
    msg["Date"] = format_datetime(record.received_at)
    msg.set_content(record.excerpt or "")
    return parse_message(msg.as_bytes())
