"""The planning process: a second process (the second core) claims due enrolments, plans
them, renders their mails and records the plan, while the worker's own process talks SMTP
and keeps the per-mail ledger.

Claiming and rendering are CPU work; in the worker's process they compete with the event
loop for the interpreter lock, and every SMTP connection waits on them. The planning process
has its own database connection and reads the same campaign folders (it reloads them when
the worker's catalog changes). Claims carry the worker's id, so leases, heartbeats and
releases stay with the worker. `nurture run --once` and tests plan in-process instead.
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
    from worker.app import App
    from worker.sending import Job

log = logging.getLogger(__name__)
_state: dict[str, App] = {}


def _watch_parent(parent: int) -> None:
    """End this process when the worker is gone (a SIGKILL leaves us adopted by init)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    log.warning("action=planning_process_orphaned parent=%d", parent)
    os._exit(0)


def _start(settings: Settings, parent: int) -> None:
    # The worker's pid comes from the worker: by the time this runs (after the imports) the
    # worker may already be gone, and getppid() would name init.
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True,
                     name="nurture-parent-watch").start()
    from worker import logs
    from worker.app import App
    logs.setup(settings.logging.level, settings.logging.format,
               [settings.secret_key.reveal()])
    app = App(settings)
    app.db.check_schema()
    _state["app"] = app


def _warm_up() -> bool:
    app = _state["app"]
    return bool(app.planner)


def _pass(worker_id: str, now: datetime, limit: int, lease_s: float,
          digest: str) -> tuple[int, list[Job]]:
    """Claim up to ``limit`` due enrolments for ``worker_id``, plan and render them."""
    app = _state["app"]
    if app.catalog.digest != digest:
        app.reload_catalog_if_changed()
    claimed = app.db.claim_due(worker_id, now, limit, lease_s)
    if not claimed:
        return 0, []
    return len(claimed), app.planner.prepare(claimed, now)


class PlanningProcess:
    """One spawned process (not forked: the worker has threads and open connections)."""

    def __init__(self, settings: Settings) -> None:
        self._executor = ProcessPoolExecutor(
            max_workers=1, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(settings, os.getpid()))

    def warm_up(self) -> Future[bool]:
        """Start the process now, so the first speed-to-lead mail does not wait for it."""
        return self._executor.submit(_warm_up)

    def submit_pass(self, worker_id: str, now: datetime, limit: int, lease_s: float,
                    digest: str) -> Future[tuple[int, list[Job]]]:
        return self._executor.submit(_pass, worker_id, now, limit, lease_s, digest)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
