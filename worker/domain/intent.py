"""What a human reply asks for: its intent, the phrase that decided, when to write again
(``resume_on``) and whom it refers us to (issue 14; ``../shared/intent/README.md``).

Intents: ``interested`` (wants to move forward now: a call, demo, trial, quote, price, a slot,
a yes), ``referral`` (names or gives another person), ``not_now`` (puts the topic off),
``wrong_person`` (not the one, names nobody), ``not_interested`` (declines) and ``neutral``.
When a reply mixes several, the first in that order wins. Separately, :attr:`Intent.stop_request`
says whether the lead explicitly asks to stop mail (in the new text or the subject): then the
class is ``unsubscribe`` whatever the intent, which is the caller's decision.

Only the lead's own words are read (see :mod:`worker.domain.intent_text`): a date or an address
in the quote, the signature or a disclaimer counts for nothing. Pure: the message date is a
parameter, nothing reads the clock or does I/O, and :func:`read_intent` never raises.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime

from worker.domain.inbound_parse import ParsedMessage
from worker.domain.intent_dates import MAX_AHEAD_DAYS, find_resume_date
from worker.domain.intent_phrases import (
    INTERESTED,
    NEGATION,
    NOT_INTERESTED,
    NOT_NOW,
    STOP_MAIL,
    WRONG_PERSON,
    YES_START,
)
from worker.domain.intent_referrals import (
    MAX_REFERRALS,
    named_person,
    own_name_tokens,
    referred,
)
from worker.domain.intent_stop import stop_request
from worker.domain.intent_text import compile_any, flat, lead_text

__all__ = ["INTENTS", "MAX_AHEAD_DAYS", "MAX_REFERRALS", "Intent", "intent_of_message",
           "read_intent"]

INTENTS = ("interested", "not_now", "not_interested", "referral", "wrong_person", "neutral")

_INTERESTED = compile_any(INTERESTED)
_YES = compile_any(YES_START)
_WRONG = compile_any(WRONG_PERSON)
_NOT_NOW = compile_any(NOT_NOW)
_NOT_INTERESTED = compile_any(NOT_INTERESTED)
_STOP = compile_any(STOP_MAIL)
_NEGATED = re.compile(NEGATION, re.IGNORECASE)
_GREETING = re.compile(
    r"^(hi|hello|hey|dear|good (morning|afternoon|evening)|g'day|hallo|guten (tag|morgen)"
    r"|sehr geehrte[r]?|gruezi|bonjour|bonsoir|hola|buen(os|as)? (dias|tardes|dia)|buenas"
    r"|buongiorno|buonasera|salve|gentile|ciao|dag|beste|hoi|goedemorgen|goedemiddag|ola|oi"
    r"|bom dia|boa tarde|hej|dzien dobry|witam)\b[^,!.\n]{0,40}[,!.]?\s*", re.IGNORECASE)
_WEEKDAY = (r"(mon|tue|tues|wed|thu|thur|thurs|fri|monday|tuesday|wednesday|thursday|friday"
            r"|tomorrow|montag|dienstag|mittwoch|donnerstag|freitag|morgen|lundi|mardi|mercredi"
            r"|jeudi|vendredi|demain|lunes|martes|miercoles|jueves|viernes|manana|lunedi|martedi"
            r"|mercoledi|giovedi|venerdi|domani|maandag|dinsdag|woensdag|donderdag|vrijdag"
            r"|segunda|terca|quarta|quinta|sexta|amanha|mandag|tisdag|tirsdag|onsdag|torsdag"
            r"|fredag|imorgon|poniedzialek|wtorek|sroda|czwartek|piatek|jutro)")
#: A proposed or accepted slot: a day next to a time of day ("Tuesday after 3", "Torsdag kl 10").
_SLOT = re.compile(
    rf"\b{_WEEKDAY}\b[^.!?\n]{{0,25}}?(\b\d{{1,2}}([:.]\d\d)?\s*(am|pm|uhr|h\b)?|\b(at|after|um"
    r"|kl\.?|a las|alle|om|as|o)\s+\d|morning|afternoon|arvo|eftermiddag|nachmittag|vormittag"
    r"|apres-midi|manana|mattina|pomeriggio|ochtend|middag|manha|tarde|formiddag|rano|po poludniu)"
    r"|\b\d{1,2}([:.]\d\d)?\s*(am|pm)\b[^.!?\n]{0,20}\b(works|suits|ok|good)",
    re.IGNORECASE)
_GERMAN = re.compile(r"\b(und|ich|nicht|wir|bitte|uns|sie|ist|der|das|fur|mit|bei|dafur)\b",
                     re.IGNORECASE)
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+")
_CONTACT = re.compile(
    r"\b(contact\w*|reach|write|e-?mail|mail|call|ring|ping|touch|back|buzz|line|revisit"
    r"|discuss|talk|then|dann|melden|kommen)\b|\b(ecri|recontact|revenez|escrib|contact"
    r"|ricontatt|mailen|procur|volte|hor av|skriv|odezwa|kijken)", re.IGNORECASE)


#: Asking to be contacted ("write to me", "melden Sie sich"): with a time named, a deferral.
_ASK_CONTACT = re.compile(
    r"\b(contact|reach out|write|e-?mail me|call me|ring me|ping me|get in touch|melden|schreiben"
    r"|ecrivez|recontact|escrib|ricontatt|scriv|mail me|mailen|bel me|skriv|hor av|kontakt"
    r"|odezwa|napisz|contate|entre em contato)", re.IGNORECASE)


@dataclass(frozen=True)
class Intent:
    """The intent of one human reply and what decided it."""

    intent: str
    reason: str
    resume_on: date | None = None
    referrals: tuple[str, ...] = ()
    stop_request: str | None = None


def _first(rx: re.Pattern[str], text: str, negatable: bool = False) -> str | None:
    for m in rx.finditer(text):
        if negatable and _NEGATED.search(text[max(0, m.start() - 30): m.start()]):
            continue
        return m.group(0)
    return None


def _interest(text: str) -> str | None:
    body = _GREETING.sub("", text, count=1).strip()
    yes = _YES.match(body)
    if yes:
        return yes.group(0).strip()
    slot = _SLOT.search(text)
    if slot:
        return slot.group(0)
    return _first(_INTERESTED, text, negatable=True)


def _resume_on(text: str, sent: date | None) -> tuple[date | None, str]:
    if sent is None:
        return None, ""
    cued = " ".join(s for s in _SENTENCES.split(text) if _NOT_NOW.search(s) or _CONTACT.search(s))
    for source in (cued, text):
        found = find_resume_date(source, sent) if source else None
        if found:
            return found
    return None, ""


def _asked_later(text: str, sent: date | None) -> str | None:
    """A time named in a sentence that asks to be contacted ("write to me in March")."""
    if sent is None:
        return None
    for sentence in _SENTENCES.split(text):
        if _ASK_CONTACT.search(sentence) and find_resume_date(sentence, sent):
            return sentence.strip()[:80]
    return None


def read_intent(new_text: str, subject: str, sent_at: datetime | None, lead: str | None,
                ours: Iterable[str], cc: Sequence[tuple[str, str]] = ()) -> Intent:
    """Intent of a human reply's new text. ``cc``: (address, display name) of other recipients.

    ``new_text`` is the lead's text above the quote; signature and boilerplate are cut here as
    well. ``sent_at`` is the message's Date (its own local date is used). Never raises.
    """
    try:
        return _read(new_text, subject, sent_at, lead, list(ours), cc)
    except Exception as exc:  # noqa: BLE001 - an unreadable reply is neutral, never fatal
        return Intent("neutral", f"intent could not be read ({type(exc).__name__})")


def _read(new_text: str, subject: str, sent_at: datetime | None, lead: str | None,
          ours: list[str], cc: Sequence[tuple[str, str]]) -> Intent:
    text = flat(new_text)
    stop = stop_request(text, subject, _STOP)
    sent = sent_at.date() if sent_at is not None else None
    interest = _interest(text)
    addrs = referred(new_text, cc, lead, ours)
    skip = own_name_tokens(lead, ours)
    person = None if addrs else named_person(new_text, skip, len(_GERMAN.findall(text)) >= 3)
    if interest:
        return Intent("interested", f"interest: '{interest}'", stop_request=stop)
    if addrs or person:
        why = f"refers to {', '.join(addrs)}" if addrs else f"refers to '{person}' (no address)"
        return Intent("referral", why, referrals=tuple(addrs), stop_request=stop)
    later = _first(_NOT_NOW, text) or _asked_later(text, sent)
    if later:
        when, phrase = _resume_on(text, sent)
        why = f"defers: '{later}'" + (f"; resume on {when} ('{phrase}')" if when else "")
        return Intent("not_now", why, resume_on=when, stop_request=stop)
    wrong = _first(_WRONG, text)
    if wrong:
        return Intent("wrong_person", f"not the right contact: '{wrong}'", stop_request=stop)
    decline = _first(_NOT_INTERESTED, text)
    if decline:
        return Intent("not_interested", f"declines: '{decline}'", stop_request=stop)
    if stop:
        return Intent("not_interested", f"asks to stop mail: {stop}", stop_request=stop)
    return Intent("neutral", "no intent phrase in the new text", stop_request=stop)


def intent_of_message(msg: ParsedMessage, ours: Iterable[str], lead: str | None = None) -> Intent:
    """:func:`read_intent` for a parsed inbound message (lead defaults to its sender)."""
    ours_l = [o.lower() for o in ours]
    lead = (lead or msg.from_addr or "").lower() or None
    cc_names = _cc_names(msg.headers.get("cc", "") + "," + msg.headers.get("to", ""))
    cc = [(a, cc_names.get(a, "")) for a in msg.to_addrs if a not in ours_l and a != lead]
    return read_intent(lead_text(msg.new_text, msg.text), msg.subject, msg.date, lead, ours_l, cc)


def _cc_names(header: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in re.finditer(r'"?([^",<]*)"?\s*<([^<>@\s]+@[^<>\s]+)>', header):
        out[m.group(2).lower()] = m.group(1).strip()
    return out
