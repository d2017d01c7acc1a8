"""Use-case: what a person's reply asks for, done after its sequence stopped (issue 14).

``interested`` -> an owner task due at once; ``not_now`` -> a task on the named date (or
``inbound.not_now_default_days``) and the campaign's ``not_now_campaign`` from that date;
``not_interested`` -> the campaign's ``on_finish`` newsletter unless ``not_interested =
"stop"`` (never suppressed); ``referral`` -> each referred address (not suppressed, at most
five) a lead of the same owner with a task and the ``referral_campaign``; ``wrong_person`` ->
a research task. Every step is safe to repeat (enrol and upsert are idempotent).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from email.utils import parseaddr

from worker.config import InboundSettings, Settings
from worker.domain import schedule, sequence
from worker.domain.campaigns import Campaign
from worker.domain.catalog import Catalog
from worker.domain.classify import Classification
from worker.domain.intent import MAX_AHEAD_DAYS, MAX_REFERRALS
from worker.domain.leads import LeadInput
from worker.domain.model import Lead
from worker.ports import Clock, EnrollmentRow
from worker.ports_store import InboxStore, OwnerTaskStore, SuppressedLookup

_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


class IntentActions:
    """Acts on a human reply's intent.

    Args:
        store: leads and enrolments (``InboxStore``).
        tasks: writes owner tasks (``OwnerTaskStore``).
        suppressed: which addresses are suppressed (``SuppressedLookup``).
        catalog: returns the current campaigns.
        clock: the time of the action.
        inbound: ``[inbound]`` settings (``not_now_default_days``).
        default_owner: the owner of a lead that has none.
    """

    def __init__(self, store: InboxStore, tasks: OwnerTaskStore, suppressed: SuppressedLookup,
                 catalog: Callable[[], Catalog], clock: Clock, inbound: InboundSettings,
                 default_owner: str | None) -> None:
        self.store, self.tasks, self.suppressed = store, tasks, suppressed
        self.catalog, self.clock, self.inbound = catalog, clock, inbound
        self.default_owner = default_owner or None

    def act(self, result: Classification, lead: Lead, ended: list[EnrollmentRow],
            ours: list[str]) -> list[str]:
        """Do what the intent asks; returns what was done, for the action column."""
        intent = result.subclass or "neutral"
        base = ended[0] if ended else next(iter(self.store.enrollments_of(lead.id)), None)
        if base is None or intent == "neutral":
            return []
        now = self.clock.now()
        camp = self.catalog().campaigns.get(base.campaign)
        name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email
        owner = lead.owner or self.default_owner
        done: list[str] = []
        if intent == "interested":
            self.tasks.add_owner_task(lead.id, base.id, base.campaign, "interested",
                                      f"Answer {name}: interested", owner, now, now)
            done.append("task: answer now (interested)")
        elif intent == "not_now":
            when = result.return_date or (now + timedelta(
                days=self.inbound.not_now_default_days)).date()
            # never more than two years ahead, whatever the reader found
            when = min(when, (now + timedelta(days=MAX_AHEAD_DAYS)).date())
            target = camp.not_now_campaign if camp else None
            # due when the lead can be written to that day: the window of the campaign that
            # will write (else the one replied to), in the lead's zone, as its first step
            windowed = self.catalog().campaigns.get(target or "") or camp
            self.tasks.add_owner_task(lead.id, base.id, base.campaign, "not_now",
                                      f"Get back to {name} (asked: not now)", owner,
                                      _opening(windowed, lead, when), now)
            done.append(f"task on {when.isoformat()} (not now)")
            if result.return_date:
                # the date the lead named, for the re-engage mail ("{{ lead.fields.resume_on }}")
                self.store.upsert_leads([(LeadInput(lead.email, {}, [], {
                    "resume_on": when.isoformat(),
                    "resume_month": f"{_MONTHS[when.month - 1]} {when.year}"}), None)])
            if target and self._enrol_on(lead, target, when):
                done.append(f"enrolled in {target} from {when.isoformat()}")
        elif intent == "not_interested":
            joins = None if camp is None or camp.not_interested == "stop" else camp.on_finish
            if joins and self._enrol_on(lead, joins, None):
                done.append(f"joined {joins} (not interested)")
        elif intent == "referral":
            done += self._referrals(result, lead, base, owner, ours, now,
                                    camp.referral_campaign if camp else None)
        elif intent == "wrong_person":
            company = lead.company or lead.domain
            self.tasks.add_owner_task(lead.id, base.id, base.campaign, "wrong_person",
                                      f"Find the right contact at {company}", owner, now, now)
            done.append("task: find the right contact")
        return done

    def _referrals(self, result: Classification, lead: Lead, base: EnrollmentRow,
                   owner: str | None, ours: list[str], now: datetime,
                   campaign: str | None) -> list[str]:
        ours_l = {o.lower() for o in ours}
        wanted = [a for a in dict.fromkeys(a.lower() for a in result.referrals)
                  if a != lead.email.lower() and a not in ours_l][:MAX_REFERRALS]
        dead = self.suppressed.suppressed_among(wanted)
        done: list[str] = []
        for addr in (a for a in wanted if a not in dead):
            columns: dict[str, str | None] = {"owner": owner}
            if addr.rpartition("@")[2] == lead.domain and lead.company:
                columns["company"] = lead.company
            stored = self.store.upsert_leads([(LeadInput(addr, columns, [], {
                "referred_by": lead.email}), "referral")])[0]
            self.tasks.add_owner_task(lead.id, base.id, base.campaign, "referral",
                                      f"Contact {addr} (referred by {lead.email})", owner, now,
                                      now, key=addr)
            done.append(f"lead {addr} (referral)")
            if campaign:
                new = self.store.lead_by_id(stored.lead_id)
                if new is not None and self._enrol_on(new, campaign, None):
                    done.append(f"enrolled {addr} in {campaign}")
        return done

    def _enrol_on(self, lead: Lead, slug: str, on: date | None) -> bool:
        """Enrol; with a date, the first step is due at the window's first opening that day."""
        camp = self.catalog().campaigns.get(slug)
        if camp is None:
            return False
        now = self.clock.now()
        due = sequence.first_due(camp, lead, now) if on is None else _opening(camp, lead, on)
        return self.store.enroll(lead.id, slug, due, reason="reply intent")[1]


def _opening(camp: Campaign | None, lead: Lead, day: date) -> datetime:
    """The first opening of the campaign's window on ``day`` in the lead's zone (midnight
    there when no campaign is known)."""
    cal = schedule.calendar_for(camp.window if camp else None, lead.timezone)
    return schedule.next_open(cal, datetime.combine(day, time(0), cal.tz))


def own_addresses(settings: Settings, catalog: Catalog) -> list[str]:
    """Our addresses: ``smtp.address``, each mailbox's, the campaigns' senders and reply-to
    addresses as loaded now (never a referral)."""
    found = [settings.smtp.address, *(mb.address for mb in settings.mailboxes.values())]
    for camp in catalog.campaigns.values():
        found += [parseaddr(v)[1] for v in (camp.sender, camp.reply_to or "") if "@" in v]
    return [a.lower() for a in found if a and "@" in a]
