"""When a `not_now` lead said we may write again (``resume_on``), from the message's Date.

Rules (``../shared/intent/README.md``): a date is that date, "after DATE" the day after; a
month is the 1st of the next such month after the message; a quarter its first day ("next
quarter": the following one); "in N days/weeks/months" the message date plus that; "next
week" the Monday after, "next month" the 1st of the next month; "next year" / "new fiscal
year" 1 January; "after the summer" 1 September; "after the holidays" in Nov/Dec 4 January;
a week number ("KW 12", "vecka 10", "uge 6") the Monday of that ISO week, the next one after
the message. Anything more than two years ahead is capped at two years. When several are
named the most precise wins (a date, then a week, a month, a quarter, a year). Pure.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

from worker.domain.return_date import MONTHS

#: The furthest ahead a resume date may lie (issue 14, "Bad input").
MAX_AHEAD_DAYS = 730

# Month words that are also common words ("may", "mar", "Jan", "sie") need a day number.
_AMBIGUOUS = {"may", "mar", "jan", "sie", "lis", "lip", "maj", "mag", "gen", "ott", "dic", "giu",
              "lug", "set", "dez", "mai", "paz", "gru", "wrz", "kwi", "cze", "sty", "lut", "abr",
              "ago", "sep", "jun", "jul", "mrt", "fev", "avr", "juil", "ene", "nov", "aug", "dec",
              "oct", "okt", "apr", "feb", "janv", "fevr", "sept", "juin", "maja", "marca", "marco"}
_SAFE_ABBR = {"jan", "feb", "apr", "aug", "sep", "sept", "oct", "okt", "nov", "dec", "fev", "janv",
              "fevr"}
_MONTH_RX = "|".join(sorted((re.escape(w) for w in MONTHS), key=len, reverse=True))
_LONE_MONTH_RX = "|".join(sorted((re.escape(w) for w in MONTHS
                                  if w not in _AMBIGUOUS or w in _SAFE_ABBR),
                                 key=len, reverse=True))
_NUM_WORDS = {
    "one": 1, "a": 1, "an": 1, "two": 2, "couple of": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "eight": 8, "ten": 10, "twelve": 12, "ein": 1, "einen": 1, "einem": 1, "zwei": 2,
    "drei": 3, "vier": 4, "sechs": 6, "un": 1, "une": 1, "deux": 2, "trois": 3, "quatre": 4,
    "six_fr": 6, "uno": 1, "una": 1, "dos": 2, "tres": 3, "cuatro": 4, "seis": 6, "due": 2,
    "tre": 3, "quattro": 4, "sei": 6, "een": 1, "twee": 2, "drie": 3, "vier_nl": 4, "zes": 6,
    "um": 1, "uma": 1, "dois": 2, "duas": 2, "en": 1, "ett": 1, "tva": 2, "tre_sv": 3, "fyra": 4,
    "sex": 6, "to": 2, "fire": 4, "seks": 6, "jeden": 1, "jeden_pl": 1, "dwa": 2, "dwie": 2,
    "trzy": 3, "cztery": 4, "szesc": 6, "pol": 0,
}
_NUM_RX = r"(\d{1,3}|" + "|".join(sorted((re.escape(w) for w in _NUM_WORDS if "_" not in w),
                                          key=len, reverse=True)) + ")"
_DAYS = r"(days?|tage?n?|jours?|dias?|giorni|dagen|dagar|dage|dni|dzien)"
_WEEKS = r"(weeks?|wochen?|semaines?|semanas?|settimane?|weken|week|veckor|vecka|uger|uge"
_WEEKS += r"|tygodni[e]?|tydzien)"
_MONTHS_UNIT = r"(months?|monate?n?|mois|meses|mes|mesi|mese|maanden|maand|manader|manad"
_MONTHS_UNIT += r"|maneder|maned|miesiac[ey]?|miesiecy)"
_YEARS = r"(years?|jahren?|ans?|anos?|anni|jaar|ar|lat)"
_IN = r"(in|within|after|nach|dans|d'ici|en|dentro de|tra|fra|over|daqui a|em|om|za|about)"

_PATTERNS: tuple[tuple[str, int, re.Pattern[str]], ...] = tuple(
    (kind, rank, re.compile(rx, re.IGNORECASE)) for kind, rank, rx in (
        ("iso", 1, r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b"),
        ("dm", 1, rf"\b(?P<d>\d{{1,2}})(st|nd|rd|th|er|e|o|\.)?\s+(de\s+|of\s+)?"
                  rf"(?P<mon>{_MONTH_RX})\b\.?(,?\s+(de\s+)?(?P<y>\d{{4}}))?"),
        ("md", 1, rf"\b(?P<mon>{_MONTH_RX})\.?\s+(?P<d>\d{{1,2}})(st|nd|rd|th)?\b(?!:)"
                  r"(,?\s+(?P<y>\d{4}))?"),
        ("num", 1, r"(?<![\d./:-])(?P<a>\d{1,2})(?P<sep>[./])(?P<b>\d{1,2})"
                   r"((?P=sep)(?P<y>\d{2,4}))?(?P<tail>\.?)(?![\d:/])"),
        ("week", 2, r"\b(kw|kalenderwoche|week|wk|vecka|veckan|uge|semaine|semana|settimana"
                    r"|tydzien|tygodniu)\.?\s?(?P<n>\d{1,2})\b"),
        ("in_n", 2, rf"\b{_IN}\s+(?P<n>{_NUM_RX})\s+(?P<unit>{_DAYS}|{_WEEKS}|{_MONTHS_UNIT}|{_YEARS})\b"),
        ("next_week", 3, r"\b(next week|nachste[n]? woche|la semaine prochaine|la proxima semana"
                         r"|la semana que viene|la prossima settimana|volgende week|proxima semana"
                         r"|semana que vem|nasta vecka|naeste uge|w przyszlym tygodniu)\b"),
        ("quarter_n", 4, r"\b(q|quartal|kwartaal|kvartal|trimestre)\s?(?P<n>[1-4])\b"),
        ("next_quarter", 4, r"\b(next quarter|nachste[nm]? quartal|prochain trimestre"
                            r"|proximo trimestre|prossimo trimestre|volgend kwartaal|nasta kvartal"
                            r"|naeste kvartal|przyszlym kwartale|nastepnym kwartale)\b"),
        ("next_month", 4, r"\b(next month|nachste[nm]? monat|le mois prochain|el (proximo )?mes"
                          r"( que viene)?|il (prossimo )?mese( prossimo)?|volgende maand"
                          r"|proximo mes|mes que vem|nasta manad|naeste maned"
                          r"|w przyszlym miesiacu)\b"),
        ("summer", 4, r"\b(after the summer|nach de[mn] sommer|apres l'ete|despues del verano"
                      r"|dopo l'estate|na de zomer|depois do verao|apos o verao|efter sommaren"
                      r"|efter sommeren|po wakacjach|po lecie)\b"),
        ("holidays", 4, r"\b(after the (holidays|christmas|new year)|after christmas"
                        r"|after new year|nach den (feiertagen|festtagen)|apres les fetes"
                        r"|despues de (las fiestas|navidad)|dopo le feste|na de feestdagen"
                        r"|depois das festas|efter helgerna|efter jul|efter helligdagene"
                        r"|po swietach)\b"),
        ("month", 3, r"\b(in|from|until|by|early|mid|late|after|before|around) "
                     r"(?P<mon>may|mar|jun|jul|jan)\b(?!-)"),
        ("month", 3, rf"\b(?P<mon>{_LONE_MONTH_RX})\b\.?"),
        ("year", 5, r"\b(next year|new (fiscal|financial|budget) year|nachste[ns]? jahr"
                    r"|neue[ns]? (geschafts|haushalts)?jahr|l'annee prochaine|l'an prochain"
                    r"|el (ano que viene|proximo ano)|l'anno prossimo|il prossimo anno"
                    r"|volgend jaar|nieuwe (boek)?jaar|no proximo ano|ano que vem|nasta ar"
                    r"|naeste ar|w przyszlym roku|in the new year|nouvel exercice)\b"),
    )
)
_AFTER = re.compile(r"\b(after|nach dem|nach|apres le|apres|despues del|despues de|dopo il|dopo"
                    r"|na|depois de|apos|efter|po)\s*(the\s+)?$", re.IGNORECASE)


def _next_date(month: int, day: int, sent: date) -> date | None:
    for year in (sent.year, sent.year + 1):
        try:
            candidate = date(year, month, day)
        except ValueError:
            continue
        if candidate > sent:
            return candidate
    return None


def _add_months(start: date, months: int) -> date:
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    for day in (start.day, 30, 29, 28):
        try:
            return date(year, month, day)
        except ValueError:
            continue
    return date(year, month, 28)


def _first_of_next(month: int, sent: date) -> date:
    year = sent.year if month > sent.month else sent.year + 1
    return date(year, month, 1)


def _number(word: str) -> int | None:
    word = word.lower()
    if word.isdigit():
        return int(word)
    return _NUM_WORDS.get(word)


def _read(kind: str, m: re.Match[str], sent: date) -> date | None:
    g = m.groupdict()
    if kind == "iso":
        return date(int(g["y"]), int(g["m"]), int(g["d"]))
    if kind in ("dm", "md"):
        month, day = MONTHS[g["mon"].lower()], int(g["d"])
        return date(int(g["y"]), month, day) if g.get("y") else _next_date(month, day, sent)
    if kind == "num":
        a, b, sep = int(g["a"]), int(g["b"]), g["sep"]
        if sep == "." and not (g["y"] or g["tail"]):
            return None  # "10.30" is a time
        readings = [(b, a)] if sep == "." else [(a, b), (b, a)]  # m/d first, as in the US
        for month, day in readings:
            if 1 <= month <= 12 and 1 <= day <= 31:
                if g["y"]:
                    year = int(g["y"]) + (2000 if len(g["y"]) == 2 else 0)
                    return date(year, month, day)
                return _next_date(month, day, sent)
        return None
    if kind == "week":
        n = int(g["n"])
        for year in (sent.year, sent.year + 1):
            try:
                monday = date.fromisocalendar(year, n, 1)
            except ValueError:
                continue
            if monday > sent:
                return monday
        return None
    if kind == "in_n":
        count = _number(g["n"])
        unit = g["unit"].lower()
        if count is None:
            return None
        if re.match(_DAYS, unit):
            return sent + timedelta(days=count)
        if re.match(_WEEKS, unit):
            return sent + timedelta(weeks=count)
        if re.fullmatch(_YEARS, unit):
            return _add_months(sent, 12 * count)
        return _add_months(sent, count)
    if kind == "next_week":
        return sent + timedelta(days=7 - sent.weekday())
    if kind == "quarter_n":
        return _first_of_next(3 * (int(g["n"]) - 1) + 1, sent - timedelta(days=1))
    if kind == "next_quarter":
        q = (sent.month - 1) // 3
        return date(sent.year + (q == 3), (q + 1) % 4 * 3 + 1, 1)
    if kind == "next_month":
        return _add_months(sent.replace(day=1), 1)
    if kind == "summer":
        return _first_of_next(9, sent)
    if kind == "holidays":
        return date(sent.year + 1, 1, 4) if sent.month in (11, 12) else None
    if kind == "month":
        return _first_of_next(MONTHS[g["mon"].lower()], sent)
    if kind == "year":
        return date(sent.year + 1, 1, 1)
    return None


def find_resume_date(text: str, sent: date) -> tuple[date, str] | None:
    """The first day the lead said we may write again, and the words that said it; or None."""
    try:
        return _find(text, sent)
    except Exception:  # noqa: BLE001 - a date we cannot read is a date we do not have
        return None


def _find(text: str, sent: date) -> tuple[date, str] | None:
    found: list[tuple[int, int, date, str]] = []
    taken: list[tuple[int, int]] = []
    for kind, rank, rx in _PATTERNS:
        for m in rx.finditer(text):
            if any(s < m.end() and m.start() < e for s, e in taken):
                continue
            taken.append((m.start(), m.end()))
            try:
                when = _read(kind, m, sent)
            except ValueError:
                when = None
            if when is None:
                continue
            phrase = m.group(0)
            if kind in ("dm", "md", "num", "iso") and _AFTER.search(text[max(0, m.start() - 14):
                                                                         m.start()]):
                when, phrase = when + timedelta(days=1), "after " + phrase
            found.append((rank, m.start(), when, phrase))
    if not found:
        return None
    _rank, _pos, when, phrase = min(found)
    return min(when, sent + timedelta(days=MAX_AHEAD_DAYS)), phrase
