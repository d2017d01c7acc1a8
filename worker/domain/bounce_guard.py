"""The bounce guard's decision: is a mailbox's recent hard-bounce rate too high to keep sending?

Pure. The caller hands the mailbox's last sends, newest first, each with whether it hard
bounced and where the address came from (import file or campaign). The guard looks at the
last ``window`` sends and trips when at least ``min_sends`` were sent and the hard-bounce
share passes ``max_rate``; the worst source is the one with the most of those bounces.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

MIN_SENDS = 50  # below this, one or two bounces would swing the rate


@dataclass(frozen=True)
class SendOutcome:
    """One send of the mailbox: did it hard bounce, and where did the address come from."""

    hard_bounced: bool
    source: str = ""


@dataclass(frozen=True)
class GuardVerdict:
    paused: bool
    sends: int
    bounces: int
    rate: float
    worst_source: str = ""
    worst_source_bounces: int = 0

    def reason(self) -> str:
        """``paused: bounce rate 7.5% over 200 sends`` (what status and /healthz show)."""
        return f"paused: bounce rate {self.rate * 100:.1f}% over {self.sends} sends"


def judge_bounces(recent: Iterable[SendOutcome], *, max_rate: float, window: int,
                  min_sends: int = MIN_SENDS) -> GuardVerdict:
    """The verdict over the newest ``window`` outcomes of ``recent`` (newest first)."""
    sends = bounces = 0
    sources: Counter[str] = Counter()
    for outcome in recent:
        if sends >= window:
            break
        sends += 1
        if outcome.hard_bounced:
            bounces += 1
            sources[outcome.source or "unknown"] += 1
    rate = bounces / sends if sends else 0.0
    worst, worst_count = (sources.most_common(1)[0] if sources else ("", 0))
    return GuardVerdict(paused=sends >= min_sends and rate > max_rate, sends=sends,
                        bounces=bounces, rate=rate, worst_source=worst,
                        worst_source_bounces=worst_count)
