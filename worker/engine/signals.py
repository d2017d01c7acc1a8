"""A stop asked for before the worker's event loop has its own signal handlers.

`nurture run` takes a second or more to start (imports, the database check). A SIGTERM in
that window would kill the process with the default action; instead it is remembered here,
and the runner stops cleanly (exit 0) as soon as it is up. While the runner runs,
``stop_signals`` routes them to its loop and puts the previous handlers back afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

EARLY_STOP = threading.Event()


def catch_early_stop() -> None:
    """Remember SIGTERM and SIGINT until the runner installs its own handlers."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: EARLY_STOP.set())


@contextlib.contextmanager
def stop_signals(on_stop: Callable[[str], None]) -> Iterator[None]:
    """SIGTERM and SIGINT call ``on_stop(name)`` on the running loop while inside; on exit the
    handlers that were there before are put back (the early-stop catcher, a test's own)."""
    loop = asyncio.get_running_loop()
    previous: dict[signal.Signals, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            before = signal.getsignal(sig)
            loop.add_signal_handler(sig, on_stop, sig.name)
            previous[sig] = before
        except (NotImplementedError, RuntimeError, ValueError):
            pass  # not the main thread (tests), or no signals on this platform
    try:
        yield
    finally:
        for sig, before in previous.items():
            loop.remove_signal_handler(sig)
            if before is not None:
                signal.signal(sig, before)
