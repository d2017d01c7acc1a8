"""Use-case: an address is dead (bounced, unsubscribed, complained): suppress it, close its
enrolments. Written once, used by SMTP-time refusals, inbound mail and the by-hand actions."""

from __future__ import annotations

from dataclasses import dataclass

from worker.domain.model import EnrollmentStatus, Lead, SuppressionReason
from worker.ports_store import SuppressionStore

#: The reason stored on the suppression and on each closed enrolment is cut to this length.
WHY_CHARS = 500


@dataclass(frozen=True)
class Suppressed:
    """What suppressing did: the lead, whether the address was new on the list, and the
    (enrollment id, campaign) of each enrolment closed."""

    lead: Lead
    added: bool
    closed: list[tuple[int, str]]


class Suppress:
    """Put a lead's address on the suppression list and close its open enrolments.

    Args:
        store: the lead, the suppression list and the enrolments (``SuppressionStore``).
    """

    def __init__(self, store: SuppressionStore) -> None:
        self.store = store

    def __call__(self, lead_id: int, reason: SuppressionReason, status: EnrollmentStatus,
                 why: str, how: str | None = None) -> Suppressed | None:
        """Suppress the lead's address for ``reason`` and move its open enrolments to
        ``status``; None if there is no such lead. Safe to repeat. ``how`` (link, reply,
        command, api) is what the ``lead.unsubscribed`` webhook says."""
        # One call, one transaction: the suppression, the closed enrolments and the event
        # commit together or not at all.
        done = self.store.suppress_lead(lead_id, reason.value, status, why[:WHY_CHARS], how=how)
        return Suppressed(*done) if done is not None else None

    def smtp_bounce(self, lead_id: int, code: int | None, text: str) -> None:
        """A 5.1.x refusal at SMTP time: the address is dead; suppress it."""
        self(lead_id, SuppressionReason.BOUNCED, EnrollmentStatus.BOUNCED,
             f"smtp {code} {text[:200]}")
