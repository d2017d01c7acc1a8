"""Webhook delivery decisions: the retry schedule, the outcome of one attempt, the secret's form.

Pure: ``now`` and the jitter are parameters, so the schedule is tested without waiting.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

#: Delays after the 1st, 2nd, ... failed attempt; after the last one, every ``LATER_S``.
DELAYS_S = (5.0, 30.0, 120.0, 600.0, 3600.0)
LATER_S = 3 * 3600.0
#: The jitter moves a delay by at most this fraction either way, so that many events that
#: failed together (a receiver outage) do not all come back in the same second.
JITTER = 0.1
SECRET_PREFIX = "whsec_"
#: The Standard Webhooks specification asks for 24 to 64 random bytes.
SECRET_BYTES = (24, 64)


class Outcome(enum.StrEnum):
    """What one attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"


@dataclass(frozen=True)
class Attempt:
    """The result of posting one event once: any 2xx is delivered, anything else retried.

    ``error`` is a short text for operators (status and the start of the answer, or the
    transport error); it never carries the secret.
    """

    outcome: Outcome
    status: int | None = None
    error: str = ""
    elapsed_s: float = 0.0
    answer_bytes: int = 0

    @property
    def delivered(self) -> bool:
        return self.outcome is Outcome.DELIVERED


def delay_s(failures: int, jitter: float = 0.5) -> float:
    """The wait after the ``failures``-th failed attempt (1-based). ``jitter`` in [0, 1]:
    0.5 gives the nominal delay, 0 and 1 the ends of the +-10 % band."""
    if failures < 1:
        raise ValueError("failures counts from 1")
    base = DELAYS_S[failures - 1] if failures <= len(DELAYS_S) else LATER_S
    return base * (1.0 + JITTER * (2.0 * min(max(jitter, 0.0), 1.0) - 1.0))


def next_attempt_at(failures: int, queued_at: datetime, now: datetime, max_age_h: float,
                    jitter: float = 0.5) -> datetime | None:
    """When to try again after ``failures`` failed attempts, or None: give up (failed).

    An event is tried for ``max_age_h`` hours from ``queued_at`` (its creation, or its
    replay); the last try falls on that deadline rather than being skipped.
    """
    deadline = queued_at + timedelta(hours=max_age_h)
    if now >= deadline:
        return None
    return min(now + timedelta(seconds=delay_s(failures, jitter)), deadline)


def check_secret(value: str) -> str | None:
    """Why ``value`` is not a Standard Webhooks secret (``whsec_`` + base64 of 24 to 64
    bytes), or None when it is."""
    if not value.startswith(SECRET_PREFIX):
        return f"must start with {SECRET_PREFIX} (generate one with `nurture webhooks secret`)"
    try:
        raw = base64.b64decode(value[len(SECRET_PREFIX):], validate=True)
    except (binascii.Error, ValueError):
        return f"must be {SECRET_PREFIX} followed by base64"
    low, high = SECRET_BYTES
    if not low <= len(raw) <= high:
        return f"must encode {low} to {high} bytes (it encodes {len(raw)})"
    return None


@dataclass(frozen=True)
class OutboxEvent:
    """One claimed event for one endpoint, as the delivery loop sees it."""

    webhook_id: str
    endpoint: str
    lead_id: int | None
    type: str
    body: str
    attempts: int
    queued_at: datetime
    seq: int = 0


@dataclass(frozen=True)
class EndpointStats:
    """One endpoint's outbox, for `nurture webhooks list`, metrics and /healthz."""

    endpoint: str
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None
    last_error_at: datetime | None = None
    last_delivered_at: datetime | None = None
    oldest_pending_at: datetime | None = None


#: An endpoint answering nothing but errors this long shows on /healthz.
FAILING_AFTER = timedelta(hours=1)


def webhook_problems(stats: Mapping[str, EndpointStats], now: datetime,
                     after: timedelta = FAILING_AFTER) -> list[str]:
    """What /healthz says about the endpoints: one that has had events waiting, and no
    delivery, for longer than ``after`` while its attempts fail; one with events given up
    after ``max_age_h`` (they stay in the outbox for `nurture webhooks replay`)."""
    problems = []
    for name, st in sorted(stats.items()):
        oldest = st.oldest_pending_at
        quiet = st.last_delivered_at is None or now - st.last_delivered_at > after
        if oldest is not None and now - oldest > after and quiet and st.last_error_at:
            problems.append(f"webhook {name}: failing since {oldest.isoformat()} "
                            f"({st.pending} pending; {st.last_error})")
        if st.failed:
            problems.append(f"webhook {name}: {st.failed} event(s) given up after max_age_h "
                            f"(`nurture webhooks replay {name} --failed`)")
    return problems
