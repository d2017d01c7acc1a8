"""The classifier on the authored held-out set in tests/heldout (issue 11's targets).

Targets: at least 97 % of classes right, every class with 8 or more messages at 90 % or more,
return dates at least 95 %, and no human reply classed as a bounce or an auto-reply.
"""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from bench.corpus import HELDOUT, Row, load_rows, message_bytes
from worker.domain.classify import Classification, classify_bytes

Outcome = tuple[Row, Classification]


@pytest.fixture(scope="module")
def outcomes() -> list[Outcome]:
    rows = load_rows(HELDOUT)
    return [(row, classify_bytes(message_bytes(HELDOUT, row))[1]) for row in rows]


def _iso(day: date | None) -> str:
    return day.isoformat() if day else ""


def test_the_set_is_big_enough(outcomes: list[Outcome]) -> None:
    counts = Counter(row.cls for row, _ in outcomes)
    assert len(outcomes) >= 60
    assert counts["human"] >= 20 and counts["auto_reply"] >= 20 and counts["unsubscribe"] >= 8


def test_class_accuracy_at_least_97_percent(outcomes: list[Outcome]) -> None:
    wrong = [f"{row.file}: {row.cls} -> {got.cls.value} ({got.reason})"
             for row, got in outcomes if got.cls.value != row.cls]
    assert (len(outcomes) - len(wrong)) / len(outcomes) >= 0.97, "\n".join(wrong)


def test_every_class_of_eight_or_more_at_90_percent(outcomes: list[Outcome]) -> None:
    support = Counter(row.cls for row, _ in outcomes)
    right = Counter(row.cls for row, got in outcomes if got.cls.value == row.cls)
    low = {cls: right[cls] / n for cls, n in support.items() if n >= 8 and right[cls] / n < 0.9}
    assert low == {}


def test_no_human_reply_is_taken_for_a_machine(outcomes: list[Outcome]) -> None:
    bad = [row.file for row, got in outcomes
           if row.cls == "human" and got.cls.value in ("bounce", "auto_reply")]
    assert bad == []


def test_return_dates_at_least_95_percent(outcomes: list[Outcome]) -> None:
    dated = [(row, got) for row, got in outcomes if row.return_date]
    misses = [(row.file, row.return_date, _iso(got.return_date))
              for row, got in dated if _iso(got.return_date) != row.return_date]
    assert len(dated) >= 20
    assert (len(dated) - len(misses)) / len(dated) >= 0.95, misses
