"""The bounce guard's decision (pure): rate over the window, a floor of sends, worst source."""

from __future__ import annotations

from worker.domain.bounce_guard import SendOutcome, judge_bounces


def _sends(bounced: int, clean: int, source: str = "leads-2024.csv") -> list[SendOutcome]:
    return [SendOutcome(True, source)] * bounced + [SendOutcome(False, "crm")] * clean


def test_trips_above_the_rate_over_the_window_and_names_the_worst_source() -> None:
    recent = _sends(12, 3, "old-list.csv") + _sends(3, 182, "crm")  # 15 of 200 = 7.5%
    verdict = judge_bounces(recent, max_rate=0.05, window=200)
    assert verdict.paused and verdict.reason() == "paused: bounce rate 7.5% over 200 sends"
    assert (verdict.worst_source, verdict.worst_source_bounces) == ("old-list.csv", 12)


def test_at_the_rate_exactly_it_keeps_sending() -> None:
    assert not judge_bounces(_sends(10, 190), max_rate=0.05, window=200).paused


def test_only_the_newest_window_counts() -> None:
    recent = _sends(0, 200) + _sends(100, 0)  # the old bounces are outside the window
    verdict = judge_bounces(recent, max_rate=0.05, window=200)
    assert not verdict.paused and verdict.bounces == 0 and verdict.sends == 200


def test_fewer_than_fifty_sends_never_trip() -> None:
    assert not judge_bounces(_sends(20, 29), max_rate=0.05, window=200).paused
    assert judge_bounces(_sends(20, 30), max_rate=0.05, window=200).paused
