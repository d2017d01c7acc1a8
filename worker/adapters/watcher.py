"""The inbox watchers' thread: a daemon thread that tells the loop when it dies.

A watcher retries what it can (a lost connection, an unreadable file) inside its own loop;
anything that escapes that loop is a bug or worse. Without a word the thread would just end
and the worker would go on sending without reading replies, so the death is logged and
handed to ``on_died`` (the loop's supervision, which stops the worker with exit 1).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

#: Called on the watcher's thread with the mailbox name and the exception that ended it.
OnDied = Callable[[str, BaseException], None]


def start_watcher(name: str, thread_name: str, target: Callable[[], None],
                  on_died: OnDied | None) -> threading.Thread:
    """Start ``target`` on a daemon thread; an exception that ends it goes to ``on_died``."""
    def run() -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - reported, then the thread ends
            log.error("action=watcher_died mailbox=%s error=%r", name, repr(exc))
            if on_died is not None:
                on_died(name, exc)
    thread = threading.Thread(target=run, name=thread_name, daemon=True)
    thread.start()
    return thread
