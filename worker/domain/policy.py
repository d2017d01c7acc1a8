"""Decisions as pure functions: retry backoff, caps and warm-up, SMTP answer classes,
soft-bounce escalation, out-of-office postponement."""

from __future__ import annotations

import random
import re
from datetime import date, datetime, timedelta

_ENHANCED_RE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def backoff_s(attempt: int, base_s: float, max_s: float, rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff for the ``attempt``-th retry (1-based)."""
    ceiling = min(max_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(ceiling / 2, ceiling)


def enhanced_status(text: str) -> str | None:
    """The first RFC 3463 enhanced status code in a server answer, e.g. ``"5.1.1"``."""
    match = _ENHANCED_RE.search(text or "")
    return ".".join(match.groups()) if match else None


def is_throttle(code: int | None, text: str) -> bool:
    """421 and 454 answers and 4.7.x codes ask the sender to slow down."""
    status = enhanced_status(text) or ""
    return code in (421, 454) or status.startswith("4.7.")


def is_recipient_rejection(code: int | None, text: str) -> bool:
    """A permanent refusal of the address itself (5.1.x, or 550/551/553 with no code)."""
    status = enhanced_status(text)
    if status:
        return status.startswith("5.1.")
    return code in (550, 551, 553) and bool(re.search(
        r"no such user|user unknown|unknown user|does not exist|mailbox unavailable|"
        r"invalid recipient|recipient rejected|address rejected", text or "", re.IGNORECASE))


def warmup_cap(start: int, daily_cap: int, ramp_days: int, first: datetime | None,
               now: datetime) -> int:
    """The daily cap during warm-up: ``start`` on the first day, rising linearly to
    ``daily_cap`` after ``ramp_days`` (no ``daily_cap``: doubling each day)."""
    if not start:
        return daily_cap
    day = 0 if first is None else max((now - first).days, 0)
    if daily_cap and ramp_days:
        return min(daily_cap, start + (daily_cap - start) * day // ramp_days)
    ramp: int = start * (2 ** min(day, 30))
    return min(ramp, daily_cap) if daily_cap else ramp


def allowance(hourly_cap: int, daily_cap: int, warmup_start: int, warmup_days: int, hour: int,
              day: int, first: datetime | None, now: datetime) -> int:
    """How many more mails a mailbox may send now (a large number when uncapped)."""
    room = 1 << 30
    if hourly_cap:
        room = min(room, hourly_cap - hour)
    cap = warmup_cap(warmup_start, daily_cap, warmup_days, first, now)
    if cap:
        room = min(room, cap - day)
    return max(room, 0)


def soft_bounce_suppresses(count_in_window: int, limit: int) -> bool:
    return limit > 0 and count_in_window >= limit


def ooo_until(message_date: date, return_date: date | None, default_days: int,
              max_days: int) -> tuple[date, str]:
    """The day after which the next step may go (before the business-day shift), and why."""
    if return_date is None:
        return message_date + timedelta(days=default_days - 1), f"no return date: {default_days} days"
    latest = message_date + timedelta(days=max_days - 1)
    if return_date > latest:
        return latest, f"return date {return_date.isoformat()} capped at {max_days} days"
    return max(return_date, message_date), f"back on {return_date.isoformat()}"
