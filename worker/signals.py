"""A stop asked for before the worker's event loop has its own signal handlers.

`nurture run` takes a second or more to start (imports, the database check). A SIGTERM in
that window would kill the process with the default action; instead it is remembered here,
and the runner stops cleanly (exit 0) as soon as it is up.
"""

from __future__ import annotations

import signal
import threading

EARLY_STOP = threading.Event()


def catch_early_stop() -> None:
    """Remember SIGTERM and SIGINT until the runner installs its own handlers."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: EARLY_STOP.set())
