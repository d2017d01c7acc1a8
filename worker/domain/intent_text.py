"""The lead's own words in a reply, as the intent reader needs them.

:func:`worker.domain.reply_text.split_reply` gives the text above the quote, which may still
hold a sign-off, a signature block and a legal disclaimer, and for inline answers only
"Answers below.". This module narrows that text conservatively, without changing the shared
splitter: it drops quote-header lines left at the top of bottom posts, appends answers written
between ``>`` quoted lines, and cuts at a signature delimiter, at a closing salutation that
follows some text ("Regards,", "Mit freundlichen Grüßen") and at any paragraph that reads like
boilerplate (confidentiality notice, GDPR/LGPD notice, company registration). Dates, addresses
and unsubscribe words after those points are not the lead's. Pure; never raises.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from worker.domain.phrases import fold

_SPECIAL = str.maketrans({
    "ß": "ss", "ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "Ae", "đ": "d",
    "œ": "oe", "Œ": "Oe", "\u0131": "i", "\u00a0": " ", "\u2019": "'", "\u2018": "'",
    "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-", "\u2011": "-",
})
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u20d0-\u20ff]+")

#: A closing salutation on its own line: what follows is the sender's signature.
_SIGN_OFF = re.compile(
    r"^(best|best regards|kind regards|warm regards|regards|many thanks|thanks|thank you|thx"
    r"|cheers|sincerely|yours sincerely|yours faithfully|yours truly|all the best|best wishes"
    r"|thanks (and|&) regards|thanks & rgds|rgds|br|talk soon|take care|have a good \w+"
    r"|mit freundlichen grussen|freundliche grusse|viele grusse|beste grusse|liebe grusse|gruss"
    r"|grusse|lg|mfg|besten dank|cordialement|bien cordialement|bien a vous|salutations"
    r"|bonne journee|bonne fin d'annee|merci|saludos|saludos cordiales|un saludo|cordialmente"
    r"|atentamente|abrazo|abrazos|cordiali saluti|saluti|distinti saluti|grazie|grazie,? saluti"
    r"|un caro saluto|met vriendelijke groet(en)?|vriendelijke groet(en)?|groet(en|jes)?"
    r"|hartelijke groet|mvg|atenciosamente|att|abs|abraco|cumprimentos|com os melhores cumprimentos"
    r"|melhores cumprimentos|obrigad[oa]|med vanlig halsning|med vanliga halsningar|vanliga halsningar"
    r"|halsningar|mvh|hilsen|venlig hilsen|med venlig hilsen|vh|tak|pozdrawiam|z powazaniem"
    r"|z wyrazami szacunku|dziekuje|serdecznie pozdrawiam)\b[\s,.!]*(\w+\.?)?[\s,.!]*$"
)
_BOILERPLATE = re.compile(
    r"(confidential|intended (only |solely )?for|intended recipient|registered (in|office)"
    r"|privileged|disclaimer|vertraulich|datenschutz|registergericht|sitz der gesellschaft"
    r"|confidenti|riservat|uitsluitend bestemd|per vergissing"
    r"|if you (have )?received|si vous avez recu|si usted lo recibio|aviso de confidencialidad"
    r"|informativa|you are receiving|please note the|we will never change our bank"
    r"|authorised and regulated|regulated by|konfidentiel|fortrolig|poufn|tajemnic)"
)
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
    kept: list[str] = []
    for ln in lines:
        folded = fold(ln).strip()
        if folded in ("--", "-- ", "__") or _OUTLOOK_HEAD.match(folded):
            break
        if kept and any(k.strip() for k in kept) and _SIGN_OFF.match(folded):
            break
        kept.append(ln)
    paragraphs = re.split(r"\n\s*\n", "\n".join(kept))
    out = [p for i, p in enumerate(paragraphs)
           if i == 0 or not _BOILERPLATE.search(fold(p))]
    return "\n\n".join(p.strip() for p in out if p.strip())
