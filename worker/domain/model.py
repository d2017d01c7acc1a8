"""Value types shared by the domain: leads, statuses, inbound classes. No I/O."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


class EnrollmentStatus(enum.StrEnum):
    ACTIVE = "active"
    WAITING = "waiting"
    PAUSED = "paused"
    REPLIED = "replied"
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: Enrolments that may still send something.
OPEN_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING, EnrollmentStatus.PAUSED)
#: Enrolments the scheduler considers when they are due.
DUE_STATUSES = (EnrollmentStatus.ACTIVE, EnrollmentStatus.WAITING)


class TouchKind(enum.StrEnum):
    EMAIL = "email"
    TASK = "task"


class TouchState(enum.StrEnum):
    PLANNED = "planned"          # recorded, not yet handed to any server
    HANDED_OVER = "handed_over"  # the SMTP transaction may have started
    ACCEPTED = "accepted"        # the server answered 250
    FAILED = "failed"            # permanent refusal (not a recipient problem)
    BOUNCED = "bounced"          # permanent refusal of the recipient (5.1.x)
    CANCELLED = "cancelled"      # planned, then withdrawn (lead replied or was suppressed)
    SKIPPED = "skipped"          # `when` was false or the late policy skipped it
    OPEN = "open"                # task not done
    DONE = "done"                # task done


class InboundClass(enum.StrEnum):
    HUMAN = "human"
    AUTO_REPLY = "auto_reply"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    OTHER = "other"


class SuppressionReason(enum.StrEnum):
    BOUNCED = "bounced"
    UNSUBSCRIBED = "unsubscribed"
    COMPLAINED = "complained"
    ERASED = "erased"
    OPERATOR = "operator"


#: Lead columns with a place of their own; anything else goes in ``fields``.
LEAD_COLUMNS = ("email", "first_name", "last_name", "company", "title", "phone", "timezone",
                "country", "owner")


@dataclass(frozen=True)
class Lead:
    """A lead as the domain sees it (a snapshot, not a database row)."""

    email: str
    id: int = 0
    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    title: str | None = None
    phone: str | None = None
    timezone: str | None = None
    country: str | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    fields: dict[str, Any] = field(default_factory=dict)

    def template_view(self) -> dict[str, Any]:
        """What a template sees as ``lead``: empty values are left out so defaults apply."""
        view: dict[str, Any] = {k: getattr(self, k) for k in LEAD_COLUMNS
                                if getattr(self, k) not in (None, "")}
        view["tags"] = list(self.tags)
        view["fields"] = {k: v for k, v in self.fields.items() if v not in (None, "")}
        view["email"] = self.email
        return view

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]


SAMPLE_LEAD = Lead(
    email="sam.sample@example.com", first_name="Sam", last_name="Sample", company="Example Co",
    title="Head of Sales", country="US", owner="dana@acme.example",
    fields={"satisfaction": 9, "industry": "Software"},
)


@dataclass(frozen=True)
class Due:
    """When the next touch is due, and why it is not sooner."""

    at: datetime
    reason: str = ""
