"""Use-case: one inbound message -> classified, matched to a lead and acted upon, recorded.

The record is written last: a crash before it means the message is handled again, and every
action here is safe to repeat. The record's unique fingerprint makes a message count once.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from worker.config import InboundSettings, NotifySettings
from worker.domain import auth_results, schedule, tokens
from worker.domain.catalog import Catalog
from worker.domain.classify import Classification, ParsedMessage, classify, parse_message
from worker.domain.leads import is_free_mail
from worker.domain.model import EnrollmentStatus, InboundClass, Lead, SuppressionReason
from worker.logs import mask
from worker.ports import Clock, InboundMetrics, RawMessage, ReplyThread, SentRow
from worker.ports_store import InboxStore
from worker.usecases.intent_actions import IntentActions
from worker.usecases.suppress import Suppress

log = logging.getLogger("worker.inbox")  # the name it had before the move (operators' filters)
_SUBJECT_TOKEN_RE = re.compile(r"unsubscribe\s+([A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16})", re.IGNORECASE)
EXCERPT_CHARS = 4000
_MSGID_RE = re.compile(r"^[!-;=?-~]{1,250}@[!-;=?-~]{1,250}$")  # printable, no < > or space
_REFERENCES_CHARS = 900
#: Thread ids and report recipients looked at per message (one query each, whatever its size).
MAX_IDS = 50
MAX_RECIPIENTS = 50


def fingerprint(data: bytes) -> str:
    """Identity of a message across UIDVALIDITY changes: a hash of its header block."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        end = data.find(b"\n\n")
    head = data[:end] if end >= 0 else data[:65536]
    return hashlib.sha256(head.replace(b"\r\n", b"\n")).hexdigest()


@dataclass
class Match:
    """The lead a message is about, the mail of ours it answers, and by which rule.
    ``trusted`` is False when nothing but an address ties it to the lead (no action)."""

    lead_id: int | None = None
    touch: SentRow | None = None
    matched_by: str | None = None
    trusted: bool = True
    note: str = ""


def is_report(parsed: ParsedMessage, result: Classification) -> bool:
    """A delivery report or complaint (which comes from a mailer, never from the lead)."""
    return (result.cls == InboundClass.BOUNCE or result.subclass == "complaint"
            or bool(parsed.reports or parsed.report_type or parsed.feedback_type))


class Inbound:
    """The ``InboundSink`` for every watched mailbox.

    Args:
        store: recorded messages, our sent mails, leads and enrolments (``InboxStore``).
        catalog: returns the current campaigns.
        clock: the time of an action (and of a message without a date).
        metrics: counts messages by class and times reply-to-stop.
        suppress: the one "address is dead" consequence.
        inbound: ``[inbound]`` settings (soft-bounce limit, out-of-office days, authserv-id).
        notify: ``[notify]`` settings (forwarding replies, the default owner).
        secret_key: verifies unsubscribe tokens quoted in a message.
        intents: acts on a person's reply's intent (tasks, enrolments, referred leads).
        own_addresses: returns our configured addresses (``smtp.address``, each mailbox's,
            the campaigns' senders): never a referral, whatever the reply was sent to.
    """

    def __init__(self, store: InboxStore, catalog: Callable[[], Catalog], clock: Clock,
                 metrics: InboundMetrics, suppress: Suppress, inbound: InboundSettings,
                 notify: NotifySettings, secret_key: bytes,
                 intents: IntentActions | None = None,
                 own_addresses: Callable[[], Sequence[str]] = tuple) -> None:
        self.store = store
        self.catalog = catalog
        self.clock = clock
        self.metrics = metrics
        self.suppress = suppress
        self.inbound = inbound
        self.notify = notify
        self.secret_key = secret_key
        self.intents = intents
        self.own_addresses = own_addresses

    def handle(self, message: RawMessage) -> bool:
        fp = fingerprint(message.data)
        # The watcher and a pre-send fence may hand over the same new message at once (and,
        # on PostgreSQL, another worker's fence): only one of them may act on it.
        with self.store.inbound_lock(message.mailbox, fp):
            return self._handle(message, fp)

    def _handle(self, message: RawMessage, fp: str) -> bool:
        if self.store.inbound_seen(message.mailbox, fp):
            return False
        parsed = parse_message(message.data)
        result = classify(parsed, self.ours(parsed, parsed.from_addr or ""))
        match = self.match(parsed, result, message.data)
        received = message.received_at or parsed.date or self.clock.now()
        acted = False
        if match.lead_id is None:
            action = f"none: no lead matched{'; ' + match.note if match.note else ''}"
        elif not match.trusted:
            action = "none: the report names none of our mails (not trusted to act on)"
        else:
            action, acted = self.act(parsed, result, match, received), True
        excerpt = (parsed.new_text or parsed.text or "")[:EXCERPT_CHARS]
        recorded = self.store.record_inbound({
            "mailbox": message.mailbox, "folder": message.folder, "uid": message.uid,
            "uidvalidity": message.uidvalidity, "fingerprint": fp,
            "message_id": (parsed.message_id or "")[:998] or None, "received_at": received,
            "from_addr": (parsed.from_addr or "")[:320] or None, "subject": parsed.subject[:2000],
            "cls": result.cls.value, "subclass": result.subclass, "reason": result.reason[:2000],
            "return_date": result.return_date, "lead_id": match.lead_id,
            "touch_id": match.touch.touch_id if match.touch else None,
            "matched_by": match.matched_by, "action": action, "excerpt": excerpt,
            "size": message.size},
            # The webhook (lead.replied, ...) is written with the record, for a lead acted on.
            text=(parsed.new_text or parsed.text or "") if acted else None)
        if recorded is None:
            return False
        self.metrics.inbound_message(result.cls.value)
        log.info("action=inbound class=%s subclass=%s matched_by=%s lead_action=%r mailbox=%s",
                 result.cls.value, result.subclass or "-", match.matched_by or "-", action,
                 message.mailbox)
        return True

    # --- matching -------------------------------------------------------------------------------

    def match(self, parsed: ParsedMessage, result: Classification, raw: bytes = b"") -> Match:
        """Tie the message to a lead only by what an outsider does not have: a thread header
        naming a mail we sent; a signed unsubscribe token; the original's Message-ID quoted
        in a delivery report; the lead's own From address (not for reports, and not when our
        server says DMARC failed). A report naming none of our mails is tied to the lead by
        its recipient only to be shown, never acted on. Body addresses never match."""
        for rule, ids in (("in_reply_to", parsed.in_reply_to[:MAX_IDS]),
                          ("references", parsed.references[::-1][:MAX_IDS])):
            sent = self.store.sent_by_message_ids(list(ids))
            if sent is not None:
                return Match(sent.lead_id, sent, rule)
        if auth_results.dmarc_failed(raw, self.inbound.authserv_id):
            return Match(note="DMARC failed: matched by thread headers only")
        token = parsed.unsubscribe_token
        if token is None:
            found = _SUBJECT_TOKEN_RE.search(parsed.subject[:2000] or "")
            token = found.group(1) if found else None
        if token:
            read = tokens.read_unsubscribe_token(self.secret_key, token)
            if read is not None and self.store.lead_by_id(read[0]) is not None:
                return Match(read[0], None, "unsubscribe_token")
        if parsed.original_message_id or parsed.original_references:
            originals = [parsed.original_message_id] if parsed.original_message_id else []
            sent = self.store.sent_by_message_ids(
                [*originals, *parsed.original_references][:MAX_IDS])
            if sent is not None:
                return Match(sent.lead_id, sent, "dsn_message_id")
        if is_report(parsed, result):
            # Anyone can write a report naming an address: shown on the lead, never acted on.
            lead_id = self.store.lead_id_by_emails(parsed.final_recipients[:MAX_RECIPIENTS])
            return Match(lead_id, None, "final_recipient" if lead_id else None, trusted=False)
        if parsed.from_addr:
            lead = self.store.lead_by_email(parsed.from_addr)
            if lead is not None:
                return Match(lead.id, self.store.last_email_to(lead.id), "from_address")
        return Match()

    # --- actions --------------------------------------------------------------------------------

    def act(self, parsed: ParsedMessage, result: Classification, match: Match,
            received: datetime) -> str:
        assert match.lead_id is not None
        cls, sub = result.cls, result.subclass
        if cls == InboundClass.HUMAN:
            return self._human(parsed, result, match, received)
        if cls == InboundClass.AUTO_REPLY:
            return self._postpone(match.lead_id, result.return_date, received)
        if cls == InboundClass.UNSUBSCRIBE:
            return self._suppress(match.lead_id, SuppressionReason.UNSUBSCRIBED,
                                  EnrollmentStatus.UNSUBSCRIBED, "unsubscribe request by mail",
                                  how="reply")
        if cls == InboundClass.BOUNCE:
            if sub == "hard":
                return self._suppress(match.lead_id, SuppressionReason.BOUNCED,
                                      EnrollmentStatus.BOUNCED, f"hard bounce: {result.reason}")
            if sub == "policy":
                return self._policy_alert(match, result)
            if "delayed" in result.reason.lower():
                return "none: delay warning (not final)"
            limit = self.inbound.soft_bounce_limit
            window = self.inbound.soft_bounce_window_days
            count = self.store.add_soft_bounce(match.lead_id, window)
            if limit and count >= limit:
                return self._suppress(match.lead_id, SuppressionReason.BOUNCED,
                                      EnrollmentStatus.BOUNCED,
                                      f"{count} soft bounces within {window} days")
            return f"soft bounce counted ({count} of {limit or 'unlimited'} in {window} days)"
        if cls == InboundClass.OTHER and sub == "complaint":
            return self._suppress(match.lead_id, SuppressionReason.COMPLAINED,
                                  EnrollmentStatus.UNSUBSCRIBED, "spam complaint")
        return "none"

    def _human(self, parsed: ParsedMessage, result: Classification, match: Match,
               received: datetime) -> str:
        lead_id = match.lead_id
        assert lead_id is not None
        newsletters = {slug for slug, c in self.catalog().campaigns.items()
                       if c.kind == "newsletter"}
        open_rows = self.store.enrollments_of(lead_id, statuses=["active", "waiting", "paused"])
        stop = [r for r in open_rows if r.campaign not in newsletters]
        closed = []
        for row in stop:
            closed += self.store.close_enrollments([lead_id], EnrollmentStatus.REPLIED,
                                                f"replied ({match.matched_by})",
                                                campaign=row.campaign)
        now = self.clock.now()
        self.metrics.replied((now - received).total_seconds())
        paused = self._pause_company(lead_id, [c for _, c in closed])
        self._forward(parsed, match, len(closed), result.subclass)
        parts = [f"replied: {len(closed)} enrolment(s) stopped"]
        if paused:
            parts.append(f"{paused} colleague enrolment(s) paused")
        lead = self.store.lead_by_id(lead_id)
        if self.intents is not None and lead is not None:
            ended = [r for r in stop if any(c == r.campaign for _, c in closed)] or stop
            parts += self.intents.act(result, lead, ended, self.ours(parsed, lead.email))
        return "; ".join(parts)

    def ours(self, parsed: ParsedMessage, lead_email: str) -> list[str]:
        """Our addresses: the configured ones and those at the domain the lead answered."""
        own = [a.lower() for a in self.own_addresses() if a and a.lower() != lead_email.lower()]
        return list(dict.fromkeys([*own, *_ours(parsed, lead_email)]))

    def _pause_company(self, lead_id: int, campaigns: list[str]) -> int:
        lead = self.store.lead_by_id(lead_id)
        if lead is None or is_free_mail(lead.domain):
            return 0
        pausing = [c for c in campaigns if (camp := self.catalog().campaigns.get(c))
                   and camp.on_reply == "pause-company"]
        if not pausing:
            return 0
        colleagues = [i for i in self.store.lead_ids_by_domain(lead.domain) if i != lead_id]
        count = 0
        for slug in pausing:
            count += len(self.store.close_enrollments(
                colleagues, EnrollmentStatus.PAUSED, f"colleague {mask(lead.email)} replied",
                ["active", "waiting"], slug))
        return count

    def _forward(self, parsed: ParsedMessage, match: Match, stopped: int,
                 intent: str | None = None) -> None:
        assert match.lead_id is not None
        lead = self.store.lead_by_id(match.lead_id)
        if lead is None or not self.notify.forward_replies:
            return
        to = lead.owner or self.notify.default_owner
        if not to:
            return
        where = (f"{match.touch.campaign} / step {match.touch.step_id} (touch "
                 f"{match.touch.touch_number or '?'})") if match.touch else "no step matched"
        body = (f"{lead.email} replied to {where}. {stopped} sequence(s) stopped.\n"
                f"From: {parsed.from_addr}\nSubject: {parsed.subject}\n\n"
                f"{(parsed.new_text or parsed.text or '').strip()[:EXCERPT_CHARS]}\n\n-- Nurture")
        # An interested lead is marked so it stands out in the owner's inbox.
        mark = "[interested] " if intent == "interested" else ""
        self.store.add_notification("reply", to,
                                    f"{mark}Reply from {lead.email}: {parsed.subject}"[:300],
                                 body, reply=reply_thread(parsed, lead))

    def _postpone(self, lead_id: int, return_date: date | None, received: datetime) -> str:
        settings = self.inbound
        lead = self.store.lead_by_id(lead_id)
        assert lead is not None
        now = self.clock.now()
        moved = []
        for row in self.store.enrollments_of(lead_id, statuses=["active", "waiting"]):
            camp = self.catalog().campaigns.get(row.campaign)
            if camp is None or camp.kind == "newsletter":
                continue
            if row.next_due_at is None:
                continue  # waiting for a task to be done (wait_for_task): nothing to move
            cal = schedule.calendar_for(camp.window, lead.timezone)
            new = ooo_due(cal, return_date, now, settings.ooo_default_days, settings.ooo_max_days)
            if row.next_due_at >= new:
                continue
            why = (f"out of office until {return_date.isoformat()}" if return_date
                   else f"out of office, no return date: {settings.ooo_default_days} days")
            self.store.set_enrollment(row.id, status="waiting", reason=why, next_due_at=new)
            moved.append(f"{row.campaign} to {new.astimezone(cal.tz).isoformat()}")
        return "postponed: " + ", ".join(moved) if moved else "none: nothing to postpone"

    def _suppress(self, lead_id: int, reason: SuppressionReason, status: EnrollmentStatus,
                  why: str, how: str | None = None) -> str:
        done = self.suppress(lead_id, reason, status, why, how)
        if done is None:
            return "none"
        return f"suppressed ({reason.value}); {len(done.closed)} enrolment(s) {status.value}"

    def _policy_alert(self, match: Match, result: Classification) -> str:
        to = self.notify.default_owner
        lead = self.store.lead_by_id(match.lead_id or 0)
        if lead is not None and lead.owner:
            to = lead.owner
        log.warning("action=policy_bounce alert=%r lead=%s", result.reason[:300],
                    mask(lead.email if lead else None))
        if to:
            self.store.add_notification("policy_bounce", to, "Mail refused by policy",
                                     f"A mail to {lead.email if lead else '?'} was refused for a "
                                     f"reason on our side:\n\n{result.reason}\n\nThe lead stays "
                                     "on the list. Check the sending domain's reputation, SPF, "
                                     "DKIM and DMARC.\n\n-- Nurture")
        return "alert: refused by policy; lead kept"


def _ours(parsed: ParsedMessage, lead_email: str) -> list[str]:
    """Our addresses in the reply's recipients: the domain of the first ``To`` (the address
    the lead answered), never the lead's."""
    head = parsed.headers.get("to", "")
    at = head.rfind("@")
    domain = head[at:].split(">")[0].strip().lower() if at >= 0 else ""
    return [a for a in parsed.to_addrs if domain and a.endswith(domain) and a != lead_email]


def reply_thread(parsed: ParsedMessage, lead: Lead) -> ReplyThread:
    """Answering the owner's copy goes to the lead (with the lead's name), in the thread of
    the lead's message. Only well-formed ids are kept; References stays within one line."""
    name = " ".join(p for p in (lead.first_name, lead.last_name) if p) or \
        (parsed.from_name if parsed.from_addr == lead.email else None)
    own = parsed.message_id if parsed.message_id and _MSGID_RE.match(parsed.message_id) \
        else None
    chain = [i for i in (*parsed.references, own) if i and _MSGID_RE.match(i)]
    kept: list[str] = []
    for message_id in reversed(list(dict.fromkeys(chain))):
        if sum(len(k) + 3 for k in kept) + len(message_id) + 3 > _REFERENCES_CHARS:
            break
        kept.insert(0, message_id)
    return ReplyThread(name or None, lead.email, own,
                       " ".join(f"<{k}>" for k in kept) or None)


def ooo_due(cal: schedule.Calendar, return_date: date | None, now: datetime, default_days: int,
            max_days: int) -> datetime:
    """The window's opening on the first business day after the return date; without one,
    ``default_days`` from now; never more than ``max_days`` from now."""
    latest = schedule.next_open(cal, now + timedelta(days=max_days))
    if return_date is None:
        return min(schedule.next_open(cal, now + timedelta(days=default_days)), latest)
    due = schedule.shift_to_business_day_after(cal, return_date)
    return max(min(due, latest), now)
