"""The date an out-of-office reply says its sender is back (or away until).

Follows the corpus convention: the date the text states after "until", "back on",
"returning" and their translations, which is the return date or the last day of absence;
for a range ("July 10-31", "du 3 au 7 mars") the end of the range. Reads ISO dates, numeric
dates (``05/07/2010``, ``12.03.``, ``3.3.``), day-month and month-day forms with month
names in en/de/fr/es/it/nl/pt/sv/da/no/fi/pl (including Polish and Finnish inflections),
and a weekday after an anchor ("back on Monday"). A missing year comes from the message
date, moving to the next year if the date would otherwise lie before the message. For
``dd/mm`` versus ``mm/dd`` the reading on or after the message date and nearest to it wins.
Pure: the message date is a parameter, the clock is never read.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from worker.domain.phrases import fold_flat

#: Month names and abbreviations (folded), with Polish genitives and Finnish partitives.
_MONTH_WORDS = {
    1: "january jan januar janner janvier janv enero ene gennaio gen januari janeiro "
       "tammikuuta tammikuun tammikuu styczen stycznia sty",
    2: "february feb februar fevrier fevr fev febrero febbraio februari fevereiro "
       "helmikuuta helmikuun helmikuu luty lutego lut",
    3: "march mar marz maerz mars marzo maart mrt marco marts "
       "maaliskuuta maaliskuun maaliskuu marzec marca",
    4: "april apr avril avr abril abr aprile huhtikuuta huhtikuun huhtikuu kwiecien kwietnia kwi",
    5: "may mai mayo maggio mag mei maio maj toukokuuta toukokuun toukokuu maja",
    6: "june jun juni juin junio giugno giu junho kesakuuta kesakuun kesakuu czerwiec czerwca cze",
    7: "july jul juli juillet juil julio luglio lug julho heinakuuta heinakuun heinakuu "
       "lipiec lipca lip",
    8: "august aug aout agosto augustus augusti elokuuta elokuun elokuu sierpien sierpnia sie",
    9: "september sep sept septembre septiembre setiembre settembre setembro "
       "syyskuuta syyskuun syyskuu wrzesien wrzesnia wrz",
    10: "october oct oktober okt octobre octubre ottobre ott outubro "
        "lokakuuta lokakuun lokakuu pazdziernik pazdziernika paz",
    11: "november nov novembre noviembre novembro marraskuuta marraskuun marraskuu "
        "listopad listopada lis",
    12: "december dec dezember dez decembre diciembre dic dicembre dezembro "
        "joulukuuta joulukuun joulukuu grudzien grudnia gru",
}
MONTHS: dict[str, int] = {w: m for m, words in _MONTH_WORDS.items() for w in words.split()}
#: Weekday names (folded), Monday = 0.
_WEEKDAY_WORDS = {
    0: "monday montag lundi lunes lunedi maandag segunda-feira segunda mandag maanantai "
       "maanantaina poniedzialek poniedzialku",
    1: "tuesday dienstag mardi martes martedi dinsdag terca-feira terca tisdag tirsdag tiistai "
       "tiistaina wtorek wtorku",
    2: "wednesday mittwoch mercredi miercoles mercoledi woensdag quarta-feira quarta onsdag "
       "keskiviikko keskiviikkona sroda srode srody",
    3: "thursday donnerstag jeudi jueves giovedi donderdag quinta-feira quinta torsdag torstai "
       "torstaina czwartek czwartku",
    4: "friday freitag vendredi viernes venerdi vrijdag sexta-feira sexta fredag perjantai "
       "perjantaina piatek piatku",
    5: "saturday samstag samedi sabado sabato zaterdag lordag lauantai lauantaina sobota soboty",
    6: "sunday sonntag dimanche domingo domenica zondag sondag sunnuntai sunnuntaina niedziela "
       "niedzieli",
}
WEEKDAYS: dict[str, int] = {w: d for d, words in _WEEKDAY_WORDS.items() for w in words.split()}

_MONTH_RX = "|".join(sorted(map(re.escape, MONTHS), key=len, reverse=True))
_WEEKDAY_RX = "|".join(sorted(map(re.escape, WEEKDAYS), key=len, reverse=True))
_ORD = r"(?:st|nd|rd|th|er|re|e|o|a|º|ª)?"
_DAY = r"\d{1,2}"
_YEAR = r"(?:,?\s+(?:de\s+)?(?P<y>\d{4}))?"
#: ISO week numbers: "KW 50", "week 50", "semaine 50", "vecka 2", "uge 6", "tydzień 3".
_WEEK_WORDS = (r"kw|kalenderwoche|cw|calendar week|week|wk|semaine|semana|settimana|vecka|uge|uke"
               r"|viikko|viikolla|tydzien|tygodniu|tydz")
_PATTERNS = (
    ("week", re.compile(rf"\b(?:{_WEEK_WORDS})\.?\s*(?:nr\.?\s*|no\.?\s*|n\.?\s*)?"
                        r"(?P<w>\d{1,2})\b(?![.:/-]\d)")),
    ("iso", re.compile(r"\b(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\b")),
    # 05/07/2010, 12.03., 3.3.2026: "tail" is the dot that makes "12.03." a date, not a time.
    ("num", re.compile(r"(?<![\d.:/-])(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})"
                       r"(?:(?P=sep)(?P<y>\d{4}|\d{2}))?(?P<tail>\.?)(?![\d:/]|[.-]\d)")),
    # "3-7 March", "du 3 au 7 mars", "del 3 al 7 de marzo"
    ("range_dm", re.compile(rf"\b(?P<d0>{_DAY}){_ORD}\.?\s*(?:-|to|au|al|a|bis|tot|till|til|do)\s*"
                            rf"(?P<d>{_DAY}){_ORD}\.?\s+(?:de\s+)?"
                            rf"(?P<mon>{_MONTH_RX})\b\.?{_YEAR}")),
    # "5 January", "5th Jan", "5. März", "4 de abril", "3. maaliskuuta"
    ("dm", re.compile(rf"\b(?P<d>{_DAY}){_ORD}\.?\s+(?:of\s+|de\s+)?"
                      rf"(?P<mon>{_MONTH_RX})\b\.?{_YEAR}")),
    # "May 5th", "July 10-31", "January 5, 2026"
    ("md", re.compile(rf"\b(?P<mon>{_MONTH_RX})\b\.?\s+(?P<d0>{_DAY}){_ORD}"
                      rf"(?:\s*(?:-|to|through|thru)\s*(?P<d>{_DAY}){_ORD})?(?!\d)"
                      r"(?:,?\s+(?P<y>\d{4}))?")),
    ("wd", re.compile(rf"\b(?P<wd>{_WEEKDAY_RX})\b")),
)
#: Words shortly before a date that make it the end of the absence or the day of return.
_ANCHOR = re.compile(
    r"\b(until|till|til|through|thru|back|return|returning|returns|again|reachable|available"
    r"|bis|zuruck|wieder|jusqu'?au|jusqu'?a|retour|hasta|regreso|regresare|volvere|vuelta"
    r"|fino|rientro|rientrero|ritorno|tot en met|t/m|tot|terug|ate|regresso|retorno|voltarei"
    r"|regressarei|retornarei|tillbaka|ater|indtil|tilbage|igen|palaan|takaisin|do|powrot"
    r"|wracam|wroce)\b[^.!?;]{0,35}$"
)
#: Finnish puts "until" after the date ("3.3. asti").
#: Finnish puts "until" after the date ("3.3. asti"); "ab Montag wieder da" says it after too.
_POST_ANCHOR = re.compile(r"^[\s.,]*(asti|saakka|wieder|zuruck|terug|tillbaka|tilbage)\b")
#: A weekday followed by a date ("Monday, December 14", "lundi 14 décembre", "Freitag, den
#: 11.12.") names that date: the weekday must not be read as "the next such weekday".
_DATE_AHEAD = re.compile(rf"^[\s,.]{{0,3}}(?:(?:the|den|der|le|el|il|de|am|op|em|on|dnia)\s+)?"
                         rf"(?:\d|(?:{_MONTH_RX})\b)")


def _local_date(when: datetime | None) -> date | None:
    return when.date() if when is not None else None


def _year_for(month: int, day: int, sent: date | None) -> date | None:
    if sent is None:
        return None
    try:
        candidate = date(sent.year, month, day)
    except ValueError:
        return None
    if candidate < sent - timedelta(days=1):
        try:
            candidate = date(sent.year + 1, month, day)
        except ValueError:
            return None
    return candidate


def _make(year: str | None, month: int, day: int, sent: date | None) -> date | None:
    if year:
        y = int(year)
        y = y + 2000 if y < 100 else y
        try:
            return date(y, month, day)
        except ValueError:
            return None
    return _year_for(month, day, sent)


def _week_monday(week: int, sent: date | None) -> date | None:
    """The Monday of ISO week ``week``: the next such week on or after the message's week."""
    if sent is None or not 1 <= week <= 53:
        return None
    for year in (sent.year, sent.year + 1):
        try:
            monday = date.fromisocalendar(year, week, 1)
        except ValueError:
            continue
        if monday > sent - timedelta(days=7):
            return monday
    return None


def _numeric(m: re.Match[str], sent: date | None) -> date | None:
    a, b, year, sep = int(m["a"]), int(m["b"]), m["y"], m["sep"]
    if not year and not (sep == "/" or (sep == "." and m["tail"])):
        return None  # "10.30" is a time, "3-4" a range of numbers
    readings = [r for r in (_make(year, b, a, sent), _make(year, a, b, sent)) if r is not None]
    if sep == "." and readings:
        readings = readings[:1]  # dotted dates are always day.month
    if not readings:
        return None
    if sent is None:
        return readings[0]
    after = [r for r in readings if r >= sent - timedelta(days=1)]
    return min(after, key=lambda r: r - sent) if after else readings[0]


def _found_dates(text: str, sent: date | None) -> list[tuple[int, date, bool, bool]]:
    """(position, date, ends a range, anchored) for every date expression in folded text."""
    out: list[tuple[int, date, bool, bool]] = []
    taken: list[tuple[int, int]] = []
    for kind, rx in _PATTERNS:
        for m in rx.finditer(text):
            if any(s <= m.start() < e or s < m.end() <= e for s, e in taken):
                continue
            found: date | None = None
            is_range = False
            if kind == "week":
                found = _week_monday(int(m["w"]), sent)
            elif kind == "iso":
                found = _make(m["y"], int(m["m"]), int(m["d"]), sent)
            elif kind == "num":
                found = _numeric(m, sent)
            elif kind in ("range_dm", "dm", "md"):
                day = m["d"] or m["d0"]
                is_range = bool(m["d"]) and kind != "dm" and bool(m.groupdict().get("d0"))
                found = _make(m["y"], MONTHS[m["mon"]], int(day), sent)
            elif (kind == "wd" and sent is not None and not _DATE_AHEAD.match(text[m.end():])
                  and (_ANCHOR.search(text[max(0, m.start() - 60): m.start()])
                       or _POST_ANCHOR.match(text[m.end():]))):
                ahead = (WEEKDAYS[m["wd"]] - sent.weekday()) % 7 or 7
                found = sent + timedelta(days=ahead)
            if found is not None:
                anchored = bool(_ANCHOR.search(text[max(0, m.start() - 60): m.start()])
                                or _POST_ANCHOR.match(text[m.end():]))
                out.append((m.start(), found, is_range, anchored))
                taken.append((m.start(), m.end()))
    return sorted(out)


def _apple_criteria(value: str) -> date | None:
    m = re.search(r"enddate=(\d{4})-(\d{2})-(\d{2})", value.lower())
    if not m:
        return None
    try:
        return date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
    except ValueError:
        return None


def find_return_date(subject: str, text: str, sent_at: datetime | None,
                     headers: dict[str, str] | None = None) -> date | None:
    """The stated return (or last absent) date of an out-of-office reply, or None."""
    try:
        return _find(subject, text, sent_at, headers or {})
    except Exception:  # noqa: BLE001 - a date we cannot read is a date we do not have
        return None


def _find(subject: str, text: str, sent_at: datetime | None,
          headers: dict[str, str]) -> date | None:
    sent = _local_date(sent_at)
    criteria = headers.get("x-apple-criteria")
    if criteria and _apple_criteria(criteria):
        return _apple_criteria(criteria)
    for source in (fold_flat(text[:2500]), fold_flat(subject)):
        found = _found_dates(source, sent)
        if sent is not None:
            earliest, latest = sent - timedelta(days=1), sent + timedelta(days=400)
            found = [f for f in found if earliest <= f[1] <= latest]
        if not found:
            continue
        anchored = [f for f in found if f[3]]
        ranges = [f for f in found if f[2]]
        if anchored:
            return anchored[0][1]
        if ranges:
            return ranges[0][1]
        return max(f[1] for f in found)
    return None
