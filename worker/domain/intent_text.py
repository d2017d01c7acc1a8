"""The lead's own words in a reply, as the intent reader needs them.

:func:`worker.domain.reply_text.split_reply` gives the text above the quote, and
:func:`worker.domain.reply_text.own_words` cuts its sign-off, signature, disclaimer and list
footer (the one way the classifier and the intent reader get the lead's own words). For
bottom posts and inline answers this module adds what the intent reader needs on top: it drops
quote-header lines left at the top, appends answers written between ``>`` quoted lines, and
stops at an Outlook header block. Dates and addresses after those points are not the lead's.
Pure; never raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from worker.domain.phrases import fold
from worker.domain.reply_text import own_words

_SPECIAL = str.maketrans({
    "ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "đ": "d",
    "œ": "oe", "Œ": "Oe", "\u0131": "i", "\u00a0": " ", "\u2019": "'", "\u2018": "'",
    "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2011": "-",
})
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff]+")

_QUOTE_HEAD = re.compile(
    r"^(on|am|le|el|il|op|em|den|w dniu|dnia|\w{2,4}\.?,? \d|\d)\b.{0,300}"
    r"(wrote|schrieb|a ecrit|escribio|ha scritto|schreef|geschreven|escreveu|skrev|pisze"
    r"|napisal\(a\)|napisal|napisala)\s*:?\s*$|^-{2,}\s*\w+ \w+\s*-{2,}$"
)
_OUTLOOK_HEAD = re.compile(r"^(from|von|de|da|van|fra|fran|od)\s*:\s*\S")


def fold_keep_case(text: str) -> str:
    """Accents removed and quotes straightened, but case kept (for names)."""
    text = unicodedata.normalize("NFKD", text.translate(_SPECIAL))
    return _COMBINING.sub("", text)


def flat(text: str) -> str:
    """:func:`fold_keep_case` with all whitespace collapsed to single spaces."""
    return " ".join(fold_keep_case(text).split())


def compile_any(table: Iterable[str]) -> re.Pattern[str]:
    """One case-insensitive pattern matching any fragment of a phrase table."""
    return re.compile("|".join(f"(?:{p})" for p in table), re.IGNORECASE)


def _inline_answers(full_text: str) -> list[str]:
    """Lines written between ``>`` quoted lines (answers inline), in order."""
    lines = full_text.splitlines()
    quoted = [i for i, ln in enumerate(lines) if ln.lstrip().startswith(">")]
    if len(quoted) < 2:
        return []
    between = [ln for ln in lines[quoted[0]: quoted[-1]]
               if ln.strip() and not ln.lstrip().startswith(">")]
    if not between:
        return []  # one quoted block: nothing written inline
    out: list[str] = []
    for ln in lines[quoted[0]:]:
        if ln.strip() in ("--", "-- ", "__"):
            break
        if ln.lstrip().startswith(">") or _QUOTE_HEAD.match(fold(ln).strip()):
            continue
        out.append(ln)
    return out if any(ln.strip() for ln in out) else []


def lead_text(new_text: str, full_text: str | None = None) -> str:
    """The lead's own words: new text without quote headers, sign-off, signature, boilerplate."""
    try:
        return _lead_text(new_text, full_text)
    except Exception:  # noqa: BLE001 - a reader of intent must never stop classification
        return new_text


def _lead_text(new_text: str, full_text: str | None) -> str:
    lines = [ln for ln in new_text.splitlines()
             if not _QUOTE_HEAD.match(fold(ln).strip()) and not ln.lstrip().startswith(">")]
    if full_text and "\n>" in "\n" + full_text:
        answers = _inline_answers(full_text)
        body = "\n".join(lines)
        seen = {ln.strip() for ln in lines if ln.strip()}
        answers = [ln for ln in answers if ln.strip() not in seen]
        if answers and len(body.strip()) < 200:
            lines = [*lines, "", *answers]
    # The sign-off, signature, disclaimer and list footer are cut the one shared way
    # (reply_text.own_words); an Outlook header left by a bottom post is cut here.
    kept: list[str] = []
    for ln in own_words("\n".join(lines)).splitlines():
        if _OUTLOOK_HEAD.match(fold(ln).strip()):
            break
        kept.append(ln)
    return "\n".join(kept).strip()
