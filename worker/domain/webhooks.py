"""Webhook events: the catalogue and the body of each type. Pure: times are parameters.

Every body is ``{"type": ..., "timestamp": ..., "data": {...}}`` (the Standard Webhooks
shape). ``data.lead`` carries the lead's id, address, name fields, company and owner, never
its free-form ``fields`` (which may hold anything a CRM export put there); no builder takes a
token or secret, so none can reach a body. Serialised once, at enqueue time, so that every
retry posts the same bytes under the same signature input.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from worker.domain.model import Lead

#: The reply text carried by ``lead.replied`` is cut to this many characters.
REPLY_TEXT_MAX = 4000


class EventType(enum.StrEnum):
    """Every event a webhook endpoint can receive."""

    LEAD_CREATED = "lead.created"
    LEAD_UPDATED = "lead.updated"
    LEAD_ENROLLED = "lead.enrolled"
    MAIL_SENT = "mail.sent"
    MAIL_FAILED = "mail.failed"
    LEAD_REPLIED = "lead.replied"
    LEAD_AUTO_REPLIED = "lead.auto_replied"
    LEAD_BOUNCED = "lead.bounced"
    LEAD_UNSUBSCRIBED = "lead.unsubscribed"
    LEAD_SUPPRESSED = "lead.suppressed"
    LEAD_ERASED = "lead.erased"
    ENROLLMENT_COMPLETED = "enrollment.completed"
    TASK_CREATED = "task.created"
    TASK_DONE = "task.done"
    PING = "ping"


EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
UNSUBSCRIBE_HOW = ("link", "reply", "command", "api")


@dataclass(frozen=True)
class WebhookEvent:
    """One event to report: its type, the lead it concerns (for per-lead ordering; None for
    ``ping`` and ``lead.erased``) and its body."""

    type: EventType
    lead_id: int | None
    body: Mapping[str, Any]

    def body_json(self) -> str:
        """The body as compact JSON: the exact text that is stored, signed and posted."""
        return json.dumps(self.body, separators=(",", ":"), ensure_ascii=False)


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with a ``Z``, millisecond precision."""
    if at.tzinfo is None:
        raise ValueError("naive datetime given to a webhook event")
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def lead_data(lead: Lead) -> dict[str, Any]:
    """What every event says about its lead."""
    return {"id": lead.id, "email": lead.email, "first_name": lead.first_name,
            "last_name": lead.last_name, "company": lead.company, "owner": lead.owner}


def _event(kind: EventType, at: datetime, lead: Lead | None, data: dict[str, Any]) -> WebhookEvent:
    body_data = {"lead": lead_data(lead), **data} if lead is not None else data
    body = {"type": kind.value, "timestamp": timestamp(at), "data": body_data}
    return WebhookEvent(kind, lead.id if lead is not None else None, body)


def _step(campaign: str, step: str | None) -> dict[str, Any]:
    return {"campaign": campaign, "step": step}


def lead_created(lead: Lead, at: datetime, source: str | None = None) -> WebhookEvent:
    """A new lead (import, API, enrol command)."""
    return _event(EventType.LEAD_CREATED, at, lead, {"source": source})


def lead_updated(lead: Lead, at: datetime, changed: Iterable[str]) -> WebhookEvent:
    """A known lead whose columns changed; ``changed`` names them."""
    return _event(EventType.LEAD_UPDATED, at, lead, {"changed": sorted(changed)})


def lead_enrolled(lead: Lead, at: datetime, campaign: str) -> WebhookEvent:
    """The lead entered a campaign."""
    return _event(EventType.LEAD_ENROLLED, at, lead, {"campaign": campaign})


def mail_sent(lead: Lead, at: datetime, campaign: str, step: str, message_id: str,
              subject: str | None = None) -> WebhookEvent:
    """A step's mail was accepted by the server (or written to the Maildir outbox)."""
    return _event(EventType.MAIL_SENT, at, lead, {**_step(campaign, step),
                                                  "message_id": message_id, "subject": subject})


def mail_failed(lead: Lead, at: datetime, campaign: str, step: str, smtp_code: int | None,
                server_words: str) -> WebhookEvent:
    """A step's mail was refused for good."""
    return _event(EventType.MAIL_FAILED, at, lead, {**_step(campaign, step),
                                                    "smtp_code": smtp_code,
                                                    "server_words": server_words})


def lead_replied(lead: Lead, at: datetime, campaign: str | None, step: str | None, cls: str,
                 subclass: str | None, text: str) -> WebhookEvent:
    """A human reply: its class, subclass and new text (quoted history already removed)."""
    return _event(EventType.LEAD_REPLIED, at, lead, {
        "campaign": campaign, "step": step, "class": cls, "subclass": subclass,
        "text": text[:REPLY_TEXT_MAX], "text_truncated": len(text) > REPLY_TEXT_MAX})


def lead_auto_replied(lead: Lead, at: datetime, campaign: str | None,
                      return_date: date | None) -> WebhookEvent:
    """An out-of-office answer, with the date the lead said they are back."""
    back = return_date.isoformat() if return_date else None
    return _event(EventType.LEAD_AUTO_REPLIED, at, lead, {"campaign": campaign,
                                                          "return_date": back})


def lead_bounced(lead: Lead, at: datetime, campaign: str | None, step: str | None, kind: str,
                 server_words: str) -> WebhookEvent:
    """A bounce: ``kind`` is hard or soft; ``server_words`` what the server said."""
    return _event(EventType.LEAD_BOUNCED, at, lead, {"campaign": campaign, "step": step,
                                                     "kind": kind, "server_words": server_words})


def lead_unsubscribed(lead: Lead, at: datetime, how: str,
                      campaign: str | None = None) -> WebhookEvent:
    """The lead asked to stop: ``how`` is link, reply, command or api."""
    if how not in UNSUBSCRIBE_HOW:
        raise ValueError(f"unsubscribe how must be one of {', '.join(UNSUBSCRIBE_HOW)}")
    return _event(EventType.LEAD_UNSUBSCRIBED, at, lead, {"how": how, "campaign": campaign})


def lead_suppressed(lead: Lead, at: datetime, reason: str) -> WebhookEvent:
    """The address will never be mailed again (bounce, complaint, import, ...)."""
    return _event(EventType.LEAD_SUPPRESSED, at, lead, {"reason": reason})


def lead_erased(address_hash: str, at: datetime) -> WebhookEvent:
    """The lead was forgotten: only the keyed hash of the address is left to tell."""
    return _event(EventType.LEAD_ERASED, at, None, {"email_hash": address_hash})


def enrollment_completed(lead: Lead, at: datetime, campaign: str,
                         next_campaign: str | None) -> WebhookEvent:
    """The lead went through the last step; ``next_campaign`` is where it moved, if anywhere."""
    return _event(EventType.ENROLLMENT_COMPLETED, at, lead, {"campaign": campaign,
                                                             "next_campaign": next_campaign})


def task_created(lead: Lead, at: datetime, campaign: str, step: str, task_id: int, kind: str,
                 text: str, owner: str | None, due_at: datetime | None) -> WebhookEvent:
    """A call or manual task for the lead's owner."""
    return _event(EventType.TASK_CREATED, at, lead, {
        **_step(campaign, step), "task": {"id": task_id, "kind": kind, "text": text,
                                          "owner": owner,
                                          "due_at": timestamp(due_at) if due_at else None}})


def task_done(lead: Lead, at: datetime, campaign: str, step: str, task_id: int,
              note: str | None) -> WebhookEvent:
    """A task was marked done, with the rep's note."""
    return _event(EventType.TASK_DONE, at, lead, {**_step(campaign, step),
                                                  "task": {"id": task_id, "note": note}})


def ping(at: datetime, endpoint: str) -> WebhookEvent:
    """A test event from ``nurture webhooks test NAME``."""
    return _event(EventType.PING, at, None, {"endpoint": endpoint})


def wants(events: frozenset[str] | None, kind: str) -> bool:
    """Whether an endpoint with this ``events`` filter (None: all) takes ``kind``. A ``ping``
    goes only to the endpoint it is addressed to, never by filter."""
    if kind == EventType.PING:
        return False
    return events is None or kind in events


def endpoints_for(filters: Mapping[str, frozenset[str] | None], kind: str) -> list[str]:
    """The endpoint names, in a stable order, that take an event of type ``kind``."""
    return sorted(name for name, events in filters.items() if wants(events, kind))
