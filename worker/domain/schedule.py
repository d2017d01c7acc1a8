"""When is the next touch due: waits, day offsets, business days, send windows, zones, holidays.

Pure functions; "now" and every base time are parameters. The worker and `nurture simulate`
both call ``due_at``, so the calendar a marketer simulates is the one the worker keeps.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays as holidays_lib

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_UNITS = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "week": "w", "weeks": "w",
    "bd": "bd", "business day": "bd", "business days": "bd",
}
_WAIT_RE = re.compile(r"^\s*(\d+)\s*([a-z ]*?)\s*$")
_HOURS_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_SEARCH_DAYS = 800  # a window that never opens in two years is a configuration error


@dataclass(frozen=True)
class Wait:
    """A wait between steps: an amount and a unit (s, m, h, d, w or bd for business days)."""

    amount: int
    unit: str

    def __str__(self) -> str:
        if self.amount == 0:
            return "0"
        return f"{self.amount} business days" if self.unit == "bd" else f"{self.amount}{self.unit}"


def parse_wait(text: str) -> Wait:
    """Parse ``"0"``, ``"90s"``, ``"3 d"``, ``"2 business days"``. Raises ValueError."""
    match = _WAIT_RE.match(str(text).lower())
    if not match:
        raise ValueError(f"bad duration {text!r}: expected a whole number and a unit, "
                         "e.g. \"90s\", \"3 d\", \"2 business days\"")
    amount, unit = int(match.group(1)), match.group(2).strip()
    if not unit:
        if amount == 0:
            return Wait(0, "s")
        raise ValueError(f"bad duration {text!r}: the unit is missing (s, m, h, d, business days)")
    if unit not in _UNITS:
        raise ValueError(f"bad duration {text!r}: unknown unit {unit!r} "
                         "(use s, m, h, d, w or business days)")
    return Wait(amount, _UNITS[unit])


@dataclass(frozen=True)
class Window:
    """When mail may go out, in the lead's local time. ``None`` hours means any time of day."""

    days: frozenset[int] = frozenset(range(7))
    start: time | None = None
    end: time | None = None
    timezone: str = "lead"
    default_timezone: str = "UTC"
    holidays: str | None = None

    @property
    def restricts(self) -> bool:
        return self.start is not None or len(self.days) < 7 or self.holidays is not None


def parse_hours(text: str) -> tuple[time, time]:
    """Parse ``"09:00-17:00"``. Raises ValueError."""
    match = _HOURS_RE.match(text)
    if not match:
        raise ValueError(f"bad hours {text!r}: expected \"HH:MM-HH:MM\"")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise ValueError(f"bad hours {text!r}: not a time of day")
    start, end = time(h1, m1), (time(23, 59, 59, 999999) if h2 == 24 else time(h2, m2))
    if end <= start:
        raise ValueError(f"bad hours {text!r}: the end must be after the start")
    return start, end


def parse_days(values: list[Any]) -> frozenset[int]:
    """Parse ``["mon", "tue", ...]``. Raises ValueError."""
    days = set()
    for value in values:
        name = str(value).strip().lower()[:3]
        if name not in DAY_NAMES:
            raise ValueError(f"unknown day {value!r} (use mon, tue, wed, thu, fri, sat, sun)")
        days.add(DAY_NAMES.index(name))
    if not days:
        raise ValueError("days must name at least one day")
    return frozenset(days)


def zone(name: str) -> ZoneInfo:
    """An IANA zone. Raises ValueError with the name."""
    try:
        return _zone(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"unknown time zone {name!r}") from None


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


@lru_cache(maxsize=64)
def holiday_calendar(spec: str) -> holidays_lib.HolidayBase:
    """Public holidays for ``"US"``, ``"US-CA"``, ``"DE-BY"``... Raises ValueError."""
    country, _, subdiv = spec.strip().partition("-")
    try:
        return holidays_lib.country_holidays(country.upper(), subdiv=subdiv.upper() or None)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise ValueError(f"unknown holiday calendar {spec!r}: {exc}") from None


@dataclass(frozen=True)
class Calendar:
    """A window resolved for one lead: the zone it is read in and the holidays it skips."""

    window: Window
    tz: ZoneInfo

    def is_business_day(self, day: date) -> bool:
        allowed = self.window.days if len(self.window.days) < 7 else frozenset(range(5))
        return day.weekday() in allowed and not self.is_holiday(day)

    def is_holiday(self, day: date) -> bool:
        return bool(self.window.holidays) and day in holiday_calendar(self.window.holidays or "")

    def is_send_day(self, day: date) -> bool:
        return day.weekday() in self.window.days and not self.is_holiday(day)


def calendar_for(window: Window | None, lead_timezone: str | None) -> Calendar:
    """Resolve which zone the window is read in for this lead."""
    win = window or Window()
    name = win.default_timezone
    if win.timezone != "lead":
        name = win.timezone
    elif lead_timezone:
        try:
            return Calendar(win, zone(lead_timezone))
        except ValueError:
            pass  # an unknown lead zone falls back to the campaign default, not an error
    return Calendar(win, zone(name))


def local(dt: datetime, tz: ZoneInfo) -> datetime:
    return dt.astimezone(tz)


def _at_local(day: date, tod: time, tz: ZoneInfo) -> datetime:
    """The instant of wall-clock ``day tod`` in ``tz``; a time inside a spring-forward gap
    moves forward by the gap, as a wall clock would."""
    naive = datetime.combine(day, tod)
    aware = naive.replace(tzinfo=tz)
    return aware.astimezone(UTC).astimezone(tz)


def next_open(cal: Calendar, at: datetime) -> datetime:
    """The earliest instant at or after ``at`` inside the send window (UTC)."""
    win = cal.window
    if not win.restricts:
        return at.astimezone(UTC)
    here = at.astimezone(cal.tz)
    day = here.date()
    for offset in range(_SEARCH_DAYS):
        current = day + timedelta(days=offset)
        if not cal.is_send_day(current):
            continue
        if win.start is None or win.end is None:
            start = _at_local(current, time(0), cal.tz) if offset else here
            return max(start, here).astimezone(UTC)
        opens = _at_local(current, win.start, cal.tz)
        closes = _at_local(current, win.end, cal.tz)
        if here < opens:
            return opens.astimezone(UTC)
        if here < closes:
            return here.astimezone(UTC)
    raise ValueError("the send window never opens (check days and holidays)")


def add_wait(cal: Calendar, base: datetime, wait: Wait) -> datetime:
    """``base`` plus ``wait``: s/m/h are elapsed time; d and w keep the local time of day
    across daylight-saving changes; business days skip weekends and holidays."""
    if wait.amount == 0:
        return base.astimezone(UTC)
    if wait.unit in ("s", "m", "h"):
        seconds = {"s": 1, "m": 60, "h": 3600}[wait.unit] * wait.amount
        # Elapsed time: add in UTC (aware arithmetic in one zone would add wall-clock time).
        return base.astimezone(UTC) + timedelta(seconds=seconds)
    here = base.astimezone(cal.tz)
    if wait.unit in ("d", "w"):
        days = wait.amount * (7 if wait.unit == "w" else 1)
        return _at_local(here.date() + timedelta(days=days), here.timetz().replace(tzinfo=None),
                         cal.tz).astimezone(UTC)
    day, left = here.date(), wait.amount
    for _ in range(_SEARCH_DAYS):
        day += timedelta(days=1)
        if cal.is_business_day(day):
            left -= 1
            if left == 0:
                return _at_local(day, here.timetz().replace(tzinfo=None), cal.tz).astimezone(UTC)
    raise ValueError("no business day found (check days and holidays)")


def day_offset(cal: Calendar, enrolled_at: datetime, day: int) -> datetime:
    """Day N of a campaign: N calendar days after the enrolment's local date, at the
    enrolment's local time of day (day 0 is the day of enrolment)."""
    here = enrolled_at.astimezone(cal.tz)
    return _at_local(here.date() + timedelta(days=day), here.timetz().replace(tzinfo=None),
                     cal.tz).astimezone(UTC)


def due_at(cal: Calendar, *, enrolled_at: datetime, previous_at: datetime | None,
           wait: Wait | None, day: int | None, use_window: bool) -> datetime:
    """When a step is due: from ``wait`` (after the previous touch, or the enrolment for the
    first step) or ``day`` (from the enrolment), then moved to the next window opening."""
    if day is not None:
        base = day_offset(cal, enrolled_at, day)
    else:
        base = add_wait(cal, previous_at or enrolled_at, wait or Wait(0, "s"))
    return next_open(cal, base) if use_window else base.astimezone(UTC)


def issue_due_at(cal: Calendar, send_on: date, joined_at: datetime) -> datetime:
    """A newsletter issue goes out at the window's first opening on its ``send_on`` day
    in the member's zone (midnight if there are no hours), never before the member joined."""
    start = cal.window.start or time(0)
    first = _at_local(send_on, start, cal.tz)
    return next_open(cal, max(first, joined_at.astimezone(cal.tz)))


def shift_to_business_day_after(cal: Calendar, day: date) -> datetime:
    """The window's opening on the first business day after ``day`` (for out-of-office)."""
    current = day
    for _ in range(_SEARCH_DAYS):
        current += timedelta(days=1)
        if cal.is_business_day(current):
            return next_open(cal, _at_local(current, cal.window.start or time(0), cal.tz))
    raise ValueError("no business day found (check days and holidays)")
