"""Use-case: intake. Create or update a lead and enrol it (by campaign or by its tags);
record an interaction and enrol where a campaign's ``enroll_when`` becomes true."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any

from worker.domain import sequence
from worker.domain.catalog import Catalog
from worker.domain.leads import LeadInput, parse_lead
from worker.errors import LeadError, LimitError, NotFound, Problem
from worker.logs import mask
from worker.ports import Clock, EnrollResult, Wake
from worker.ports_store import LeadStore, NotificationStore

# The logger keeps the name it had before the use-cases moved: operators' log filters and
# the import command's quieting of the per-enrolment line select on it.
log = logging.getLogger("worker.service")
EVENT_TYPE_RE = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")


def refuse_suppressed(store: LeadStore, email: str) -> None:
    """A suppressed address is never stored or enrolled again: LeadError on ``email``."""
    reason = store.suppression_for(email)
    if reason:
        raise LeadError("email", f"suppressed ({reason}): this address is never mailed again")


class Intake:
    """Leads in: from the API, the command line and imports.

    Args:
        store: leads, events and enrolments: the lead room (``LeadStore``).
        notes: the notification queue (``NotificationStore``), for contact requests.
        catalog: returns the current campaigns (they are reloaded while the worker runs).
        clock: the time of an enrolment.
        wake: called when a step became due now, so the loop plans it at once.
        default_owner: who hears of a contact request when the lead has no owner.
    """

    def __init__(self, store: LeadStore, notes: NotificationStore,
                 catalog: Callable[[], Catalog], clock: Clock, wake: Wake,
                 default_owner: str | None = None) -> None:
        self.store = store
        self.notes = notes
        self.catalog = catalog
        self.clock = clock
        self.wake = wake
        self.default_owner = default_owner

    def intake(self, data: Mapping[str, Any], campaign: str | None = None,
               tags: list[str] | None = None, source: str | None = None,
               priority: int = 0) -> EnrollResult:
        """Create or update a lead and enrol it (explicit campaign, or by its tags)."""
        lead_in = parse_lead(data)
        if tags:
            lead_in.tags = sorted(set(lead_in.tags) | {t.lower() for t in tags})
        refuse_suppressed(self.store, lead_in.email)
        if campaign:
            self.catalog().get(campaign)  # refuse an unknown campaign before storing anything
        upsert = self.store.upsert_leads([(lead_in, source)])[0]
        result = EnrollResult(upsert.lead_id, upsert.outcome)
        for slug in self.campaigns_for(lead_in, campaign):
            enrolled = self.enroll(upsert.lead_id, slug, priority=priority)
            (result.enrolled if enrolled else result.already).append(slug)
        return result

    def campaigns_for(self, lead_in: LeadInput, campaign: str | None) -> list[str]:
        """The campaign given, else every campaign whose ``enroll_tags`` the lead has."""
        if campaign:
            return [campaign]
        tags = set(lead_in.tags)
        return [slug for slug, camp in sorted(self.catalog().campaigns.items())
                if tags & set(camp.enroll_tags)]

    def enroll(self, lead_id: int, slug: str, priority: int = 0, reason: str = "enrolled") -> bool:
        """Enrol now; wakes the worker when the first step is due at once. False if the lead
        already has an open enrolment in that campaign."""
        camp = self.catalog().get(slug)
        lead = self.store.lead_by_id(lead_id)
        if lead is None:
            raise NotFound(f"no lead with id {lead_id}")
        now = self.clock.now()
        due = sequence.first_due(camp, lead, now)
        _, created = self.store.enroll(lead_id, slug, due, priority=priority, reason=reason)
        if created:
            log.info("action=enrolled campaign=%s lead=%s due_at=%s", slug, mask(lead.email),
                     due.isoformat() if due else "-")
        if priority or (due is not None and due <= now):
            self.wake()
        return created

    def record_event(self, email: str, kind: str, fields: Mapping[str, Any],
                     source: str | None = None) -> tuple[int, list[str]]:
        """Record an interaction; store its fields on the lead; enrol where a campaign's
        ``enroll_when`` becomes true. Returns (lead id, campaigns enrolled)."""
        kind = kind.strip().lower()
        if not EVENT_TYPE_RE.match(kind):
            raise LeadError("type", f"not an event type: {kind!r} (letters, digits, _ and -)")
        lead_in = parse_lead({"email": email, "fields": dict(fields)})
        refuse_suppressed(self.store, lead_in.email)
        lead_id = self.store.upsert_leads([(lead_in, source)])[0].lead_id
        _, types = self.store.add_event(lead_id, kind, lead_in.fields, source)
        contact = kind == "contact_request"
        lead = self.store.lead_by_id(lead_id)
        assert lead is not None
        ctx = sequence.condition_context(lead, types)
        enrolled: list[str] = []
        catalog = self.catalog()
        for slug, camp in sorted(catalog.campaigns.items()):
            try:
                if camp.enroll_condition is None or not camp.enroll_condition(ctx):
                    continue
            except LimitError as exc:  # past a sandbox limit: the campaign is skipped, logged once
                catalog.skip(slug, Problem(exc.template, exc.line, exc.reason))
                continue
            if self.store.enrollments_of(lead_id, slug) and not contact:
                continue  # enrolled once already (open or finished)
            if self.enroll(lead_id, slug, priority=1 if contact else 0,
                           reason=f"enroll_when: {camp.enroll_when}"):
                enrolled.append(slug)
        if contact:
            self._contact_request(lead_id, lead.email, lead.owner)
        return lead_id, enrolled

    def _contact_request(self, lead_id: int, email: str, owner: str | None) -> None:
        self.store.prioritize([row.id for row in self.store.enrollments_of(
            lead_id, statuses=["active", "waiting"]) if not row.priority])
        to = owner or self.default_owner
        if to:
            self.notes.add_notification("contact_request", to, f"Contact request from {email}",
                                        f"{email} asked to be contacted. Their sequence moved "
                                        "to the front of the queue.\n\n-- Nurture")
        self.wake()
