"""Does a reply explicitly ask to stop mail? The boundary between ``unsubscribe`` and a
decline (``not_interested``): "please remove me", "stop emailing me", "bitte aus dem Verteiler
löschen", or a subject that ends with such a request ("... [remove me]", "... - UNSUBSCRIBE").

Reads the lead's own words only (boilerplate and footers are cut before this is asked, and
"click here to unsubscribe" or "I don't want to unsubscribe" are not requests). Reuses the
classifier's multilingual unsubscribe table (:data:`worker.domain.phrases.UNSUBSCRIBE_BODY`)
and adds request phrasings it lacks. Pure.
"""

from __future__ import annotations

import re

from worker.domain.phrases import (
    NEGATIONS,
    REPLY_PREFIX,
    UNSUBSCRIBE_BODY,
    UNSUBSCRIBE_SUBJECT,
    compile_table,
    fold_flat,
)

_SHARED = compile_table(UNSUBSCRIBE_BODY)
_FOOTER = re.compile(
    r"(click|here\b|link|https?:|www\.|preferences|if you (no longer |do not |don't )?(wish|want)"
    r"|you (are receiving|received|can|may) |reply with|in the subject)")
_SUBJECT_TAIL = re.compile(r"(?:\s[-|:]\s|\[|\()\s*([^\[\]()|]{2,60}?)\s*[\])]?\s*$")


def _is_request(flat: str, start: int, end: int, phrase: str) -> bool:
    before, after = flat[max(0, start - 60): start], flat[end: end + 60]
    before = re.split(r"[.!?;,]", before)[-1]  # a negation counts in its own sentence only
    around = f"{before[-40:]} {phrase} {after}"
    return not NEGATIONS.search(before) and not _FOOTER.search(around)


def stop_request(text: str, subject: str, extra: re.Pattern[str]) -> str | None:
    """The words asking to stop mail (new text, then subject), or None."""
    folded = fold_flat(text[:3000])
    for m in extra.finditer(folded):
        if _is_request(folded, m.start(), m.end(), m.group(0)):
            return f"'{m.group(0)}' in the new text"
    for _lang, _pattern, rx in _SHARED:
        for m in rx.finditer(folded):
            if _is_request(folded, m.start(), m.end(), m.group(0)):
                return f"'{m.group(0)}' in the new text"
    core = REPLY_PREFIX.sub("", fold_flat(subject)).strip()
    tail = _SUBJECT_TAIL.search(core)
    for part in (core, tail.group(1) if tail else ""):
        part = re.sub(r"^(please|pls|bitte|svp|por favor|per favore|alstublieft|prosze)\s+", "",
                      part.strip(" :[]()!.-"))
        if part and (UNSUBSCRIBE_SUBJECT.match(part) or extra.search(part)
                     or re.search(r"\b(unsubscribe|remove me|opt[ -]?out|loschen|austragen)\b",
                                  part)):
            return f"subject '{subject.strip()}' asks to stop mail"
    return None
