"""Who a reply refers us to: addresses written in the lead's words, cc'd people it introduces,
and people it only names (then the referral has no address).

An address counts when it is in the lead's own text (after :mod:`worker.domain.intent_text`
cut the signature and boilerplate) or in ``Cc``/``To`` and introduced by the text (a cc cue
such as "cc'd", "in Kopie", "te pongo en copia", or the person's name). Never the lead's own
address or ours; at most :data:`MAX_REFERRALS`. Suppressed addresses are the caller's to drop:
this module has no store. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from worker.domain.intent_phrases import REFERRAL_CUE, TITLES
from worker.domain.intent_text import compile_any, fold_keep_case

#: A reply naming many addresses creates at most this many leads (issue 14, "Bad input").
MAX_REFERRALS = 5

_ADDR = re.compile(r"(?<![\w.+-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_CUE = compile_any(REFERRAL_CUE)
_CC_CUE = re.compile(
    r"(\bcc'?d?\b|\bcopy(ing)? in\b|\bcopied\b|loop(ing|ed)? in|\badding\b|\badded\b|(^|\s)\+\w"
    r"|in kopie|\bin cc\b|en copie|en copia|in copia|em copia|pa kopia|i kopia|pa cc|w kopii"
    r"|in de cc|te pongo|coloco|lagger till|saetter|dodaje|introduc)", re.IGNORECASE)
_NAME = re.compile(r"(?<![\w'@.-])([A-Z][a-z]+(?:-[A-Z][a-z]+)?)(?![\w@'-])")
_TITLED = re.compile(rf"\b{TITLES}\s+([A-Z][a-z]+)")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+")
#: Capitalised words that are not people (greetings, pronouns, roles, places of work, dates).
_NOT_NAMES = frozenset("""
i we our you your he she they the a an it its this that these those my me us hi hello hey dear
thanks thank cheers regards best please not no yes ok so but and or if is are was would could
should will can may might just also still only then there here now sorry great good
hallo guten tag sie ihr ihnen du wir ich bitte danke vielen dank leider bei uns die der das
bonjour merci je vous nous il elle ce c'est madame monsieur hola gracias yo usted ella el le la
buongiorno grazie lei io noi salve gentile dag beste hoi ik u jij wij zij hij goedemorgen
ola oi bom boa voce eu ele quem hej tack jag vi du han hon det prova prov tak jeg dzien dobry
prosze ja pan pani panem mr mrs ms dr sir madam team office department ceo cfo coo cto it hr
monday tuesday wednesday thursday friday saturday sunday january february march april may june
july august september october november december mon tue wed thu fri sat sun not me champ mate
sales purchasing finance accounts operations marketing support admin reception procurement
manager director head owner owners boss de del da di van von for from to on in at of with
""".split())


def addresses(text: str) -> list[str]:
    """Addresses written in ``text``, lower-cased, in order, without repeats."""
    return list(dict.fromkeys(a.lower().rstrip(".") for a in _ADDR.findall(text)))


def _own_tokens(addrs: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for addr in addrs:
        local = addr.split("@", 1)[0].lower()
        out.update(t for t in re.split(r"[._+-]", local) if len(t) > 1)
    return out


def _cc_introduced(text: str, addr: str, names: str) -> bool:
    text = fold_keep_case(text)
    if _CC_CUE.search(text):
        return True
    tokens = {t for t in re.split(r"[._+-]", addr.split("@", 1)[0].lower()) if len(t) > 2}
    tokens |= {t.lower() for t in names.split() if len(t) > 2}
    words = {w.lower() for w in re.findall(r"\w+", text)}
    return bool(tokens & words) and bool(_CUE.search(text))


def named_person(text: str, exclude: Iterable[str], german: bool) -> str | None:
    """A person named next to a referral cue ("talk to Shane"), or None."""
    skip = {e.lower() for e in exclude} | _NOT_NAMES
    for sentence in _SENTENCE.split(fold_keep_case(text)):
        if not _CUE.search(sentence):
            continue
        titled = _TITLED.search(sentence)
        if titled and titled.group(1).lower() not in skip:
            return titled.group(0)
        if german:
            continue  # every German noun is capitalised: only titles name a person
        for m in _NAME.finditer(sentence):
            word = m.group(1)
            if word.lower() in skip:
                continue
            start = sentence[: m.start()].strip()
            if not start or start.endswith(("-", "!", "?")):
                nxt = sentence[m.end():].lstrip()
                if not _NAME.match(nxt):
                    continue  # a lone capitalised word opening a sentence is not a name
            return word
    return None


def referred(text: str, cc: Iterable[tuple[str, str]], lead: str | None,
             ours: Iterable[str]) -> list[str]:
    """Referred addresses: in the text, or cc'd and introduced; not the lead's, not ours."""
    ours_set = {o.lower() for o in ours}
    own = (lead or "").lower()

    def keep(addr: str) -> bool:
        domain = addr.rsplit("@", 1)[-1]
        return addr != own and addr not in ours_set and not any(
            domain == o.rsplit("@", 1)[-1] for o in ours_set)

    found = [a for a in addresses(text) if keep(a)]
    for addr, names in cc:
        addr = addr.lower()
        if keep(addr) and addr not in found and _cc_introduced(text, addr, names):
            found.append(addr)
    return found[:MAX_REFERRALS]


def own_name_tokens(lead: str | None, ours: Iterable[str]) -> set[str]:
    """Name parts of the lead's and our addresses ("dana", "tom"): never a referred person."""
    return _own_tokens([*(o for o in ours), *([lead] if lead else [])])
