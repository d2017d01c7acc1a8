"""The render process: a second process (the second core) reads, plans and renders claimed
enrolments, while the worker's own process claims, records and talks SMTP.

Planning and rendering are pure CPU plus reads; in the worker's process they would compete
with the event loop for the interpreter lock. The render process reads the same campaign
folders (reloading them when the worker's catalog changes), gets its planner from a factory
the composition root hands over and the signing key and installation tag from the worker,
so its mails are exactly the worker's, and reads the database on a connection of its own
(WAL readers never wait for the writer on SQLite). It writes nothing: the worker claims (one
short write) and records the plan and every answer, so on SQLite nothing waits for another
process's write lock. Small batches (a lone speed-to-lead mail) are planned in the worker:
no round trip.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from worker.config import Settings
from worker.domain.catalog import Catalog, CatalogHolder
from worker.engine.planning import Planned, Planner

if TYPE_CHECKING:
    from worker.domain.send_rows import ClaimRow

log = logging.getLogger(__name__)
MIN_BATCH = 16
_state: dict[str, object] = {}
# Builds the worker's planner in the render process, over a connection of its own (reads
# only): ``(settings, signing key, installation tag, catalog getter) -> Planner``. The
# composition root passes a module-level function (spawn pickles it by name); the render
# process owns the catalog and reloads it when the worker's changes.
PlannerFactory = Callable[[Settings, bytes, str, Callable[[], Catalog]], Planner]
# Reads the campaigns there, on start and when the worker's digest differs (a module-level
# function from the root, like the factory).
CatalogLoader = Callable[[Settings], Catalog]


def _watch_parent(parent: int) -> None:
    """End this process when the worker is gone (a SIGKILL leaves us adopted by init)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _start(settings: Settings, parent: int, factory: PlannerFactory, key: bytes,
           install: str, load: CatalogLoader) -> None:
    # The worker's pid comes from the worker: by the time this runs (after the imports) the
    # worker may already be gone, and getppid() would name init.
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="nurture-parent-watch").start()
    catalogs = CatalogHolder(lambda: load(settings))
    _state["load"] = load
    _state["settings"] = settings
    _state["catalogs"] = catalogs
    _state["planner"] = factory(settings, key, install, catalogs.get)


def _ready() -> bool:
    return "planner" in _state


def _plan(rows: list[ClaimRow], now: datetime, digest: str) -> Planned:
    planner, settings, catalogs = _state["planner"], _state["settings"], _state["catalogs"]
    assert isinstance(settings, Settings) and isinstance(planner, Planner)
    assert isinstance(catalogs, CatalogHolder)
    if catalogs.get().digest != digest:
        load = _state["load"]
        assert callable(load)
        catalogs.replace(load(settings))
    return planner.plan_claimed(rows, now)


class RenderProcess:
    """One spawned process (not forked: the worker has threads and open connections).

    Args:
        settings: passed to the planner factory and used to reload campaigns.
        factory: builds the planner there (see ``PlannerFactory``).
        key, install: the signing key and installation tag, so its mails are the worker's.
        load: reads the campaigns there (see ``CatalogLoader``).
    """

    def __init__(self, settings: Settings, factory: PlannerFactory, key: bytes,
                 install: str, load: CatalogLoader) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(settings, os.getpid(), factory, key, install, load))

    def warm_up(self) -> Future[bool]:
        """Start the process now, so a first big batch does not wait for its imports."""
        return self._executor.submit(_ready)

    def plan(self, rows: list[ClaimRow], now: datetime, digest: str) -> Future[Planned]:
        """Read, plan and render claimed enrolments there; the worker records the result."""
        return self._executor.submit(_plan, rows, now, digest)

    def close(self) -> None:
        """Stop the process without waiting for a batch in progress."""
        self._executor.shutdown(wait=False, cancel_futures=True)
