"""Values kept and made again in the background (``usecases/kept.py``): the campaign page's
report and charts. A first read waits a short while at most; later reads never wait."""

from __future__ import annotations

import threading
import time

import pytest

from worker.errors import NotFound
from worker.usecases.kept import Kept


class Slow:
    """A maker that counts its calls and, once ``hold`` is cleared, waits for ``release``."""

    def __init__(self) -> None:
        self.calls = 0
        self.release = threading.Event()
        self.hold = threading.Event()  # set: the maker waits for ``release``

    def __call__(self) -> str:
        self.calls += 1
        if self.hold.is_set():
            assert self.release.wait(10)
        return f"value {self.calls}"


def settle(kept: Kept[str], key: str) -> None:
    """Wait for the background maker of ``key`` to finish."""
    for thread in threading.enumerate():
        if thread.name == f"{kept.name}-{key}":
            thread.join(10)


def test_a_quick_first_value_is_answered_at_once_and_kept() -> None:
    kept: Kept[str] = Kept("t", ttl_s=60)
    make = Slow()
    assert kept.get("a", make, wait_s=10) == "value 1"
    assert kept.get("a", make, wait_s=10) == "value 1"
    assert make.calls == 1


def test_a_slow_first_value_is_not_waited_for_and_shows_up_later() -> None:
    kept: Kept[str] = Kept("t", ttl_s=60)
    make = Slow()
    make.hold.set()
    started = time.monotonic()
    assert kept.get("a", make, wait_s=0.05) is None
    assert time.monotonic() - started < 5
    assert kept.get("a", make, wait_s=0.05) is None  # still being made: not made twice
    make.release.set()
    settle(kept, "a")
    assert kept.get("a", make, wait_s=0) == "value 1"
    assert make.calls == 1


def test_an_old_value_is_served_while_a_new_one_is_made() -> None:
    kept: Kept[str] = Kept("t", ttl_s=0)
    make = Slow()
    assert kept.get("a", make, wait_s=10) == "value 1"
    make.hold.set()
    assert kept.get("a", make, wait_s=10) == "value 1"  # old, at once; value 2 is on its way
    make.release.set()
    settle(kept, "a")
    assert make.calls == 2
    assert kept.get("a", make, wait_s=0) == "value 2"


def test_a_new_version_is_made_again_without_a_ttl() -> None:
    kept: Kept[str] = Kept("t")
    make = Slow()
    assert kept.get("a", make, wait_s=10, version=1) == "value 1"
    assert kept.get("a", make, wait_s=10, version=1) == "value 1"
    assert make.calls == 1
    assert kept.get("a", make, wait_s=10, version=2) == "value 1"  # the old one meanwhile
    settle(kept, "a")
    assert kept.get("a", make, wait_s=10, version=2) == "value 2"


def test_a_failure_reaches_the_waiting_caller_and_the_next_call_tries_again() -> None:
    kept: Kept[str] = Kept("t", ttl_s=60)
    calls: list[int] = []

    def make() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise NotFound("no such campaign")
        return "found"

    with pytest.raises(NotFound):
        kept.get("a", make, wait_s=10)
    assert kept.get("a", make, wait_s=10) == "found"
