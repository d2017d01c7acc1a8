"""Use-case: hold a mailbox's mail while it must not send (the bounce guard paused it, or its
OAuth 2.0 grant was refused), and trip the bounce guard after a hard bounce.

The send loop asks ``held(mailbox)`` before each send (answered from a cache refreshed every
``recheck_s``, so a `nurture mailbox resume` or `mailbox login` takes effect within seconds
without a database read per mail) and calls ``after_bounce(mailbox)`` after a hard bounce.
Held mail is deferred by the loop, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Protocol

from worker.domain.bounce_guard import SendOutcome, judge_bounces
from worker.usecases.mailbox_alerts import MailboxAlerts

log = logging.getLogger(__name__)


class StoppedMailboxes(Protocol):
    """Which mailboxes are stopped, and why (``{name: "paused: ..."}``)."""

    def __call__(self) -> Mapping[str, str]: ...


class BounceGuard:
    """Answers "may this mailbox send now?" and pauses a mailbox that bounces too much.

    Args:
        stopped: reads the stopped mailboxes and why.
        recent: ``(mailbox, window) -> outcomes``, newest first.
        limits: ``mailbox -> (max_bounce_rate, bounce_window)``.
        alerts: records the pause and tells the operator and default owner.
    """

    def __init__(self, stopped: StoppedMailboxes,
                 recent: Callable[[str, int], list[SendOutcome]],
                 limits: Callable[[str], tuple[float, int]], alerts: MailboxAlerts,
                 recheck_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._stopped = stopped
        self._recent = recent
        self._limits = limits
        self._alerts = alerts
        self._recheck_s = recheck_s
        self._clock = clock
        self._cache: Mapping[str, str] = {}
        self._read_at = float("-inf")
        self._lock = threading.Lock()

    def held(self, mailbox: str) -> str | None:
        """Why ``mailbox`` must not send now, or None."""
        with self._lock:
            if self._clock() - self._read_at >= self._recheck_s:
                self._cache = dict(self._stopped())
                self._read_at = self._clock()
            return self._cache.get(mailbox)

    def after_bounce(self, mailbox: str) -> bool:
        """Judge the mailbox's recent sends after a hard bounce; True if it was paused now."""
        max_rate, window = self._limits(mailbox)
        verdict = judge_bounces(self._recent(mailbox, window), max_rate=max_rate, window=window)
        if not verdict.paused:
            return False
        reason = verdict.reason().removeprefix("paused: ")
        details = (f"{verdict.bounces} hard bounces in the last {verdict.sends} sends (limit "
                   f"{max_rate * 100:g}%); worst source: {verdict.worst_source} "
                   f"({verdict.worst_source_bounces} bounces)")
        paused = self._alerts.paused(mailbox, reason, details)
        with self._lock:
            self._read_at = float("-inf")  # the next send reads the new pause
        return paused
