"""Values that are slow to make (a campaign's report at 100,000 leads, its charts), kept and
made again in the background, so that no page waits long for one.

``get`` answers at once with the kept value, even an old one (a fresh one is being made
meanwhile in a thread); with nothing kept yet, it starts making one and waits at most
``wait_s`` for it. A value not ready within that is ``None``: the page says it is being
counted and looks again a moment later. Small installations never see that: their report is
ready well within the wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from worker.errors import UserError

V = TypeVar("V")
log = logging.getLogger(__name__)


@dataclass
class _Making:
    done: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class Kept(Generic[V]):
    """Values by key, each made by a function in a background thread.

    Args:
        name: names the threads and the log lines (``report``, ``charts``).
        ttl_s: a value older than this is made again (None: only when its version changes).
    """

    def __init__(self, name: str, ttl_s: float | None = None) -> None:
        self.name, self.ttl_s = name, ttl_s
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Hashable, float, V]] = {}
        self._making: dict[str, _Making] = {}

    def get(self, key: str, make: Callable[[], V], wait_s: float,
            version: Hashable = None) -> V | None:
        """The value of ``key`` (see the module docstring); raises what ``make`` raised when
        nothing is kept (the next call tries again)."""
        with self._lock:
            kept = self._values.get(key)
            fresh = kept is not None and kept[0] == version and (
                self.ttl_s is None or time.monotonic() - kept[1] < self.ttl_s)
            making = self._making.get(key)
            if not fresh and making is None:
                making = self._making[key] = _Making()
                threading.Thread(target=self._make, args=(key, make, version, making),
                                 daemon=True, name=f"{self.name}-{key}").start()
        if kept is not None:
            return kept[2]
        assert making is not None
        if not making.done.wait(wait_s):
            return None
        if making.error is not None:
            raise making.error
        with self._lock:
            kept = self._values.get(key)
        return kept[2] if kept is not None else None

    def _make(self, key: str, make: Callable[[], V], version: Hashable,
              making: _Making) -> None:
        try:
            value = make()
        except Exception as exc:  # the waiting page raises it; old values stay
            making.error = exc
            if not isinstance(exc, UserError):  # a campaign without data is no failure
                log.exception("action=%s_failed key=%s", self.name, key)
        else:
            with self._lock:
                self._values[key] = (version, time.monotonic(), value)
        finally:
            with self._lock:
                self._making.pop(key, None)
            making.done.set()
