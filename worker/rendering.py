"""The render process: a second process (the second core) reads, plans and renders claimed
enrolments, while the worker's own process claims, records and talks SMTP.

Planning and rendering are pure CPU plus reads; in the worker's process they would compete
with the event loop for the interpreter lock. The render process reads the same campaign
folders (reloading them when the worker's catalog changes), gets the signing key and the
installation tag from the worker, so its mails are exactly the worker's, and reads the
database on a connection of its own (WAL readers never wait for the writer on SQLite). It
writes nothing: the worker claims (one short write) and records the plan and every answer,
so on SQLite nothing waits for another process's write lock. Small batches (a lone
speed-to-lead mail) are planned in the worker: no round trip.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from worker.config import Settings

if TYPE_CHECKING:
    from worker.adapters.db.rows import ClaimRow
    from worker.catalog import Catalog
    from worker.sending import Planned, Planner

log = logging.getLogger(__name__)
MIN_BATCH = 16
_state: dict[str, object] = {}


def _watch_parent(parent: int) -> None:
    """End this process when the worker is gone (a SIGKILL leaves us adopted by init)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(0)


def _start(settings: Settings, parent: int, key: bytes, install: str) -> None:
    # The worker's pid comes from the worker: by the time this runs (after the imports) the
    # worker may already be gone, and getppid() would name init.
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="nurture-parent-watch").start()
    from worker.mailer import MailFactory
    _state["settings"] = settings
    _state["factory"] = MailFactory(settings, key, install)
    _state["catalog"] = _load(settings)
    _state["planner"] = _planner(settings)


def _planner(settings: Settings) -> Planner:
    """The worker's planner over a connection of this process's own, used for reads only."""
    from worker.adapters.db import Database
    from worker.adapters.db.engine import make_engine
    from worker.domain.sequence import Policy
    from worker.sending import Planner
    w = settings.worker
    rules = Policy(w.late_policy, w.late_spread_h, settings.notify.default_owner or None)
    from worker.catalog import Catalog
    from worker.mailer import MailFactory
    catalog, factory = _state["catalog"], _state["factory"]
    assert isinstance(catalog, Catalog) and isinstance(factory, MailFactory)
    db = Database(make_engine(settings.database.url, 1))
    return Planner(db, catalog, factory, rules, w.retry_base_s, w.retry_max_s)


def _load(settings: Settings) -> Catalog:
    from worker.catalog import load_catalog
    return load_catalog(settings.campaigns_dir, settings.templates_dir,
                        mailbox_names=frozenset(settings.mailboxes))


def _ready() -> bool:
    return "catalog" in _state


def _plan(rows: list[ClaimRow], now: datetime, digest: str) -> Planned:
    from worker.catalog import Catalog
    from worker.sending import Planner
    catalog, planner, settings = _state["catalog"], _state["planner"], _state["settings"]
    assert isinstance(catalog, Catalog) and isinstance(planner, Planner)
    if catalog.digest != digest:
        assert isinstance(settings, Settings)
        catalog = _state["catalog"] = planner.catalog = _load(settings)
    return planner.plan_claimed(rows, now)


class RenderProcess:
    """One spawned process (not forked: the worker has threads and open connections)."""

    def __init__(self, settings: Settings, key: bytes, install: str) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(settings, os.getpid(), key, install))

    def warm_up(self) -> Future[bool]:
        """Start the process now, so a first big batch does not wait for its imports."""
        return self._executor.submit(_ready)

    def plan(self, rows: list[ClaimRow], now: datetime, digest: str) -> Future[Planned]:
        """Read, plan and render claimed enrolments there; the worker records the result."""
        return self._executor.submit(_plan, rows, now, digest)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
