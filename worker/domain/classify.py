"""Inbound message -> class, subclass, the deciding sign, and an out-of-office return date.

The questions, in order; each strong signal is asked before the weaker ones it would
otherwise be mistaken for:

1. Reports other than delivery reports: ARF feedback (``other``/``complaint`` for abuse,
   fraud, opt-out), older feedback loops that attach the reported mail (Microsoft JMRP),
   read receipts (``other``).
2. A challenge-response request ("add yourself to my guest list") is ``other``; asked before
   bounces because some dress up as delivery reports, but never of a mail daemon's notice.
3. Delivery reports and plain-text failure notices are ``bounce`` (``hard``, ``soft``,
   ``policy``); success reports are ``other``. Before auto-replies: many bounces carry
   ``Auto-Submitted``.
4. A mail to our ``unsubscribe+TOKEN@`` address is ``unsubscribe``; a mail client's
   one-click unsubscribe to an address that is not ours is ``other``.
5. Automatic replies (headers, subject, opening words) are ``auto_reply`` with a return date.
6. Mail that is no reply and shows bulk or spam signs is ``other``.
7. A reply whose new text (above the quote, without signature) asks to stop mail, or whose
   whole subject is "unsubscribe", is ``unsubscribe``.
8. Everything else was written by a person: ``human``, with its intent as the subclass
   (:mod:`worker.domain.intent`: interested, not_now, not_interested, referral, wrong_person,
   neutral). An explicit stop request the intent reader finds (which step 7 missed) makes it
   ``unsubscribe``; a ``not_now``'s date is its ``return_date``, a referral's addresses its
   ``referrals``.

The work is done in :mod:`worker.domain.inbound_parse` (bytes -> facts),
:mod:`worker.domain.bounce`, :mod:`worker.domain.auto_reply`, :mod:`worker.domain.bulk` and
:mod:`worker.domain.return_date`. Nothing here reads the clock or does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from worker.domain.auto_reply import is_challenge, read_auto_reply, subject_core
from worker.domain.bounce import is_daemon, read_bounce
from worker.domain.bulk import bulk_or_spam, reply_strength
from worker.domain.dsn import DeliveryReport
from worker.domain.inbound_parse import ParsedMessage, parse_message
from worker.domain.intent import intent_of_message
from worker.domain.model import InboundClass
from worker.domain.phrases import (
    FORWARD_PREFIX,
    NEGATIONS,
    REPLY_PREFIX,
    UNSUBSCRIBE_BODY,
    UNSUBSCRIBE_SUBJECT,
    UNSUBSCRIBE_SUBJECT_TAIL,
    compile_table,
    fold_flat,
)
from worker.domain.reply_text import own_words
from worker.domain.return_date import find_return_date

__all__ = ["Classification", "DeliveryReport", "ParsedMessage", "classify", "classify_bytes",
           "parse_message"]

_UNSUBSCRIBE = compile_table(UNSUBSCRIBE_BODY)
#: Context around an unsubscribe word that makes it a footer or a link, not a request.
_FOOTER = re.compile(
    r"(click|here\b|link|https?:|www\.|manage (your )?(preferences|subscription|e-?mail)"
    r"|if you (no longer |do not |don't )?(wish|want)|you (are receiving|received|can|may) "
    r"|this (e-?mail|message) was sent|unsubscribe (here|link|from this list|at any time|below)"
    r"|to unsubscribe,|preferences|abmelden (sie sich|konnen)|desinscrire ici|darse de baja aqui"
    # the noun, not the request: "our unsubscribe rate", "the unsubscribe button"
    r"|unsubscribe\s+(rate|button|page|option|process|footer|flow|request)s?\b)"
)
_COMPLAINT_SUBJECT = re.compile(
    r"complaint about message from|email feedback report|abuse report|spam (complaint|report)"
)
#: ARF feedback types that are the recipient's complaint (RFC 5965, RFC 6650).
_COMPLAINT_TYPES = ("abuse", "fraud", "virus", "other", "complaint", "opt-out", "optout")


@dataclass(frozen=True)
class Classification:
    """The class of an inbound message and what decided it."""

    cls: InboundClass
    subclass: str | None
    reason: str
    return_date: date | None = None
    referrals: tuple[str, ...] = ()


def classify_bytes(raw: bytes, ours: Iterable[str] = ()) -> tuple[ParsedMessage, Classification]:
    """Parse and classify raw message bytes; never raises."""
    msg = parse_message(raw)
    return msg, classify(msg, ours)


def classify(msg: ParsedMessage, ours: Iterable[str] = ()) -> Classification:
    """Classify a parsed inbound message; never raises. ``ours``: our own addresses (never
    a referral); without them, the addresses at the domain of the message's first ``To``."""
    try:
        return _classify(msg, list(ours))
    except Exception as exc:  # noqa: BLE001 - a message we cannot read is recorded, not fatal
        return Classification(InboundClass.OTHER, None,
                              f"could not be classified ({type(exc).__name__})")


def _classify(msg: ParsedMessage, ours: list[str]) -> Classification:
    report = _report(msg)
    if report is not None:
        return report
    challenge = None if is_daemon(msg) else is_challenge(msg)
    if challenge:
        return Classification(InboundClass.OTHER, None,
                              f"challenge-response request ('{challenge}')")
    verdict = read_bounce(msg)
    if verdict is not None:
        if verdict.success:
            return Classification(InboundClass.OTHER, None, verdict.reason)
        return Classification(InboundClass.BOUNCE, verdict.subclass, verdict.reason)
    if not msg.headers and not msg.subject and msg.from_addr is None:
        return Classification(InboundClass.OTHER, None, "no message headers: not an email")
    if msg.unsubscribe_token:
        return Classification(InboundClass.UNSUBSCRIBE, None,
                              "mailto unsubscribe: sent to our unsubscribe+TOKEN@ address")
    if msg.headers.get("x-apple-unsubscribe", "").strip().lower() == "true":
        # A client's one-click unsubscribe to some other list's address (ours carry a token).
        return Classification(InboundClass.OTHER, None, "client-generated unsubscribe "
                              "(X-Apple-Unsubscribe) to an address that is not ours")
    auto = read_auto_reply(msg)
    if auto is not None:
        subclass, reason = auto
        back = None
        if subclass == "ooo":
            back = find_return_date(msg.subject, msg.new_text or msg.text, msg.date, msg.headers)
        return Classification(InboundClass.AUTO_REPLY, subclass, reason, back)
    bulk = bulk_or_spam(msg)
    if bulk is not None:
        return Classification(InboundClass.OTHER, None, bulk)
    unsubscribe = _unsubscribe_request(msg)
    if unsubscribe is not None:
        return Classification(InboundClass.UNSUBSCRIBE, None, unsubscribe)
    return _human(msg, ours)


def _human(msg: ParsedMessage, ours: list[str]) -> Classification:
    """A person's reply: its intent is the subclass; an explicit stop request unsubscribes."""
    if not ours:
        ours = _addressed_to(msg)
    intent = intent_of_message(msg, ours)
    if intent.stop_request:
        return Classification(InboundClass.UNSUBSCRIBE, None,
                              f"asks to stop mail: {intent.stop_request}")
    return Classification(InboundClass.HUMAN, intent.intent,
                          f"{_human_reason(msg)}; intent {intent.reason}",
                          intent.resume_on, intent.referrals)


def _addressed_to(msg: ParsedMessage) -> list[str]:
    """Addresses at the domain the reply was sent to (the first ``To``): ours."""
    first = re.search(r"@([\w.-]+)", msg.headers.get("to", ""))
    if first is None:
        return []
    domain = "@" + first.group(1).lower().rstrip(".")
    return [a for a in msg.to_addrs if a.endswith(domain)]


def _report(msg: ParsedMessage) -> Classification | None:
    """Feedback-loop complaints and read receipts (multipart/report other than delivery)."""
    if msg.report_type == "feedback-report" or msg.feedback_type:
        kind = (msg.feedback_type or "").strip().lower()
        sub = "complaint" if not kind or kind.startswith(_COMPLAINT_TYPES) else None
        return Classification(InboundClass.OTHER, sub,
                              f"ARF feedback-report (Feedback-Type: {kind or '-'})")
    if msg.report_type == "disposition-notification":
        return Classification(InboundClass.OTHER, None,
                              "read receipt (message/disposition-notification)")
    if _COMPLAINT_SUBJECT.search(fold_flat(msg.subject)) and "message/rfc822" in msg.content_types:
        # Feedback loops that predate ARF (Microsoft JMRP) attach the reported mail as is.
        return Classification(InboundClass.OTHER, "complaint",
                              f"spam complaint report ('{msg.subject.strip()}')")
    return None


def _unsubscribe_request(msg: ParsedMessage) -> str | None:
    core = FORWARD_PREFIX.sub("", subject_core(msg.subject)).strip(" :[]()!.")
    if UNSUBSCRIBE_SUBJECT.match(core) or UNSUBSCRIBE_SUBJECT_TAIL.search(core):
        return f"subject '{msg.subject.strip()}' asks to unsubscribe"
    # Only the sender's own words: a phrase in a signature, a legal disclaimer or a list
    # footer under the reply is boilerplate, not a request (issue 11).
    flat = fold_flat(own_words(msg.new_text[:3000]))
    for lang, _pattern, rx in _UNSUBSCRIBE:
        for m in rx.finditer(flat):
            before, after = flat[max(0, m.start() - 60): m.start()], flat[m.end(): m.end() + 60]
            around = f"{before[-40:]} {m.group(0)} {after}"
            if NEGATIONS.search(before) or _FOOTER.search(around):
                continue  # "I don't want to unsubscribe", "click here to unsubscribe"
            return f"body phrase '{m.group(0)}' ({lang}) in the new text"
    return None


def _human_reason(msg: ParsedMessage) -> str:
    if not reply_strength(msg):
        return "no automatic markers: written by a person (fresh mail)"
    if REPLY_PREFIX.match(fold_flat(msg.subject)):
        how = "reply prefix"
    elif msg.in_reply_to or msg.references:
        how = "thread headers"
    else:
        how = msg.quote_marker or "reply"
    return f"no automatic markers: written by a person ({how})"
