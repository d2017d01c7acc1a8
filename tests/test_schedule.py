"""The schedule: waits, day offsets, business days, windows, zones, DST and holidays."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest

from worker.domain import schedule
from worker.domain.schedule import Wait, Window, add_wait, calendar_for, next_open, parse_wait

NY = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
PARIS = ZoneInfo("Europe/Paris")
TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = frozenset(range(5))


def window(tz: str = "America/New_York", holidays: str | None = None, hours: str | None = "09:00-17:00",
           days: frozenset[int] = WEEKDAYS) -> Window:
    start, end = schedule.parse_hours(hours) if hours else (None, None)
    return Window(days=days, start=start, end=end, timezone="lead", default_timezone=tz,
                  holidays=holidays)


@pytest.mark.parametrize("text,expected", [
    ("0", Wait(0, "s")), ("90s", Wait(90, "s")), ("3 d", Wait(3, "d")), ("3d", Wait(3, "d")),
    ("2 business days", Wait(2, "bd")), ("1 business day", Wait(1, "bd")), ("45 m", Wait(45, "m")),
    ("2h", Wait(2, "h")), ("1w", Wait(1, "w")), ("2 days", Wait(2, "d")),
])
def test_parse_wait_accepts_the_spec_forms(text: str, expected: Wait) -> None:
    assert parse_wait(text) == expected


@pytest.mark.parametrize("text", ["3 fortnights", "soon", "-1d", "1.5d", "", "d3", "5"])
def test_parse_wait_refuses_anything_else_with_the_value_in_the_message(text: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_wait(text)
    assert repr(text) in str(info.value)


def test_next_open_moves_an_evening_send_to_the_next_morning_in_the_leads_zone() -> None:
    # Given a 09:00-17:00 weekday window read in Berlin time
    cal = calendar_for(window(), "Europe/Berlin")
    # When a step falls due on Monday at 18:30 Berlin time
    due = datetime(2026, 3, 2, 18, 30, tzinfo=BERLIN)
    # Then it waits for Tuesday 09:00 Berlin
    assert next_open(cal, due) == datetime(2026, 3, 3, 9, 0, tzinfo=BERLIN)


def test_next_open_skips_the_weekend_and_keeps_a_time_inside_the_window() -> None:
    cal = calendar_for(window(), None)
    friday_evening = datetime(2026, 3, 6, 17, 0, tzinfo=NY)
    assert next_open(cal, friday_evening) == datetime(2026, 3, 9, 9, 0, tzinfo=NY)
    inside = datetime(2026, 3, 4, 11, 15, tzinfo=NY)
    assert next_open(cal, inside) == inside


def test_an_unknown_lead_zone_falls_back_to_the_campaign_default() -> None:
    assert calendar_for(window(), "Mars/Olympus").tz == NY


def test_a_fixed_campaign_zone_ignores_the_lead_zone() -> None:
    win = Window(days=WEEKDAYS, start=time(9), end=time(17), timezone="Asia/Tokyo")
    assert calendar_for(win, "Europe/Berlin").tz == TOKYO


def test_days_keep_the_local_time_across_the_us_spring_forward() -> None:
    # Given 09:30 New York on Friday 6 March 2026 (EST, UTC-5); DST starts Sunday 8 March
    cal = calendar_for(window(), None)
    start = datetime(2026, 3, 6, 9, 30, tzinfo=NY)
    # When three calendar days are added
    later = add_wait(cal, start, Wait(3, "d"))
    # Then it is 09:30 New York again (EDT, UTC-4), i.e. 23 hours of elapsed time
    assert later.astimezone(NY).time() == time(9, 30)
    assert later.astimezone(NY).utcoffset().total_seconds() == -4 * 3600
    assert (later - start.astimezone(UTC)).total_seconds() == (3 * 24 - 1) * 3600


def test_hours_are_elapsed_time_across_the_eu_fall_back() -> None:
    cal = calendar_for(window("Europe/Berlin"), None)
    start = datetime(2026, 10, 24, 22, 0, tzinfo=BERLIN)  # DST ends 25 October 03:00
    later = add_wait(cal, start, Wait(12, "h"))
    assert (later - start).total_seconds() == 12 * 3600
    assert later.astimezone(BERLIN).hour == 9  # wall clock shows 09:00, one hour "more"


def test_a_window_opening_inside_the_spring_forward_gap_moves_forward() -> None:
    # A 02:30 window opening does not exist on 8 March 2026 in New York.
    win = Window(days=frozenset(range(7)), start=time(2, 30), end=time(4, 0),
                 default_timezone="America/New_York")
    cal = calendar_for(win, None)
    opens = next_open(cal, datetime(2026, 3, 8, 0, 0, tzinfo=NY))
    assert opens.astimezone(NY) == datetime(2026, 3, 8, 3, 30, tzinfo=NY)


@pytest.mark.parametrize("spec,zone,day_before,holiday,expected", [
    # US: Thanksgiving (Thu 26 Nov 2026) is skipped
    ("US", "America/New_York", date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)),
    # Germany (Bavaria): Epiphany, Tue 6 Jan 2026, is a holiday there
    ("DE-BY", "Europe/Berlin", date(2026, 1, 5), date(2026, 1, 6), date(2026, 1, 7)),
    # France: Fête nationale, Tue 14 July 2026
    ("FR", "Europe/Paris", date(2026, 7, 13), date(2026, 7, 14), date(2026, 7, 15)),
    # Japan: Marine Day, Mon 20 July 2026 (after a weekend)
    ("JP", "Asia/Tokyo", date(2026, 7, 17), date(2026, 7, 20), date(2026, 7, 21)),
])
def test_holidays_are_skipped_in_several_countries(spec: str, zone: str, day_before: date,
                                                    holiday: date, expected: date) -> None:
    # Given a window with the country's holiday calendar
    cal = calendar_for(window(zone, holidays=spec), None)
    tz = ZoneInfo(zone)
    assert cal.is_holiday(holiday) and not cal.is_business_day(holiday)
    # When a step falls due after hours on the day before the holiday
    due = datetime.combine(day_before, time(18, 0), tzinfo=tz)
    # Then it goes out when the window opens on the next business day
    assert next_open(cal, due) == datetime.combine(expected, time(9, 0), tzinfo=tz)
    # And business days count over the holiday
    assert add_wait(cal, datetime.combine(day_before, time(10), tzinfo=tz), Wait(1, "bd")) \
        .astimezone(tz).date() == expected


def test_business_days_skip_weekends_and_keep_the_time_of_day() -> None:
    cal = calendar_for(window(), None)
    friday = datetime(2026, 3, 6, 10, 0, tzinfo=NY)
    assert add_wait(cal, friday, Wait(2, "bd")) == datetime(2026, 3, 10, 10, 0, tzinfo=NY)


def test_day_offsets_count_from_the_enrolment_local_date() -> None:
    cal = calendar_for(window("Europe/Berlin"), None)
    enrolled = datetime(2026, 3, 27, 10, 0, tzinfo=BERLIN)  # DST begins 29 March in the EU
    day7 = schedule.day_offset(cal, enrolled, 7)
    assert day7.astimezone(BERLIN) == datetime(2026, 4, 3, 10, 0, tzinfo=BERLIN)
    assert schedule.day_offset(cal, enrolled, 0) == enrolled


def test_due_at_without_window_sends_right_after_enrolment() -> None:
    cal = calendar_for(window(), None)
    sunday_night = datetime(2026, 3, 8, 23, 0, tzinfo=NY)
    assert schedule.due_at(cal, enrolled_at=sunday_night, previous_at=None, wait=Wait(0, "s"),
                           day=None, use_window=False) == sunday_night
    assert schedule.due_at(cal, enrolled_at=sunday_night, previous_at=None, wait=Wait(0, "s"),
                           day=None, use_window=True) == datetime(2026, 3, 9, 9, 0, tzinfo=NY)


def test_a_window_that_never_opens_is_an_error() -> None:
    cal = calendar_for(Window(days=frozenset({6}), start=time(9), end=time(10),
                              default_timezone="UTC", holidays=None), None)
    assert next_open(cal, datetime(2026, 3, 2, tzinfo=UTC)).weekday() == 6
    with pytest.raises(ValueError):
        schedule.parse_days([])


def test_unknown_holiday_calendar_and_zone_are_refused() -> None:
    with pytest.raises(ValueError, match="XX"):
        schedule.holiday_calendar("XX")
    with pytest.raises(ValueError, match="Mars/Olympus"):
        schedule.zone("Mars/Olympus")


def test_out_of_office_date_is_the_opening_of_the_first_business_day_after_return() -> None:
    from worker.usecases.inbound import ooo_due
    cal = calendar_for(window(holidays="US"), None)
    now = datetime(2026, 11, 20, 15, 0, tzinfo=NY)  # Friday
    # Back on Wednesday 25 November: Thursday is Thanksgiving, so Friday 27 at 09:00
    assert ooo_due(cal, date(2026, 11, 25), now, 7, 30) == datetime(2026, 11, 27, 9, 0, tzinfo=NY)
    # No return date: 7 days later, inside the window
    assert ooo_due(cal, None, now, 7, 30) == datetime(2026, 11, 27, 15, 0, tzinfo=NY)
    # A return date in half a year is capped at 30 days
    capped = ooo_due(cal, date(2027, 5, 1), now, 7, 30)
    assert capped.astimezone(NY).date() == date(2026, 12, 21)
