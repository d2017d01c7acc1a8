"""Rendering mails in a separate process, so a second core builds messages while the
worker's event loop talks SMTP and keeps the ledger.

Rendering is pure CPU (Jinja, then the message bytes); the render process loads the same
campaign folders and settings, and reloads them when the worker's catalog changes. A batch
smaller than ``min_batch`` is rendered in the worker itself: a lone speed-to-lead mail should
not pay for a round trip.
"""

from __future__ import annotations

import logging
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime

from worker.catalog import Catalog, load_catalog
from worker.config import Settings
from worker.domain.model import Lead
from worker.domain.sequence import TouchPlan
from worker.errors import TemplateError
from worker.mailer import MailFactory
from worker.ports import Envelope

log = logging.getLogger(__name__)
_CHUNK = 100


@dataclass(frozen=True)
class RenderRequest:
    campaign: str
    touch: TouchPlan
    lead: Lead
    enrollment_id: int
    now: datetime


@dataclass(frozen=True)
class RenderResult:
    envelope: Envelope | None
    subject: str | None = None
    error: str | None = None


def render_one(catalog: Catalog, factory: MailFactory, request: RenderRequest) -> RenderResult:
    """Build one mail; a template problem becomes an error result, never an exception."""
    campaign = catalog.campaigns.get(request.campaign)
    if campaign is None:
        return RenderResult(None, error=f"campaign {request.campaign!r} is not loaded")
    try:
        envelope, subject = factory.build(campaign, request.touch, request.lead,
                                          request.enrollment_id, request.now)
    except (TemplateError, ValueError) as exc:
        return RenderResult(None, error=str(exc))
    return RenderResult(envelope, subject)


# --- the render process ------------------------------------------------------------------------

_state: dict[str, object] = {}


def _start(settings: Settings, key: bytes, install: str) -> None:
    _state["settings"] = settings
    _state["factory"] = MailFactory(settings, key, install)
    _state["catalog"] = _load(settings)


def _load(settings: Settings) -> Catalog:
    return load_catalog(settings.campaigns_dir, settings.templates_dir,
                        mailbox_names=frozenset(settings.mailboxes))


def _render_chunk(requests: list[RenderRequest], digest: str) -> list[RenderResult]:
    catalog = _state["catalog"]
    assert isinstance(catalog, Catalog)
    if catalog.digest != digest:
        settings = _state["settings"]
        assert isinstance(settings, Settings)
        catalog = _state["catalog"] = _load(settings)
    factory = _state["factory"]
    assert isinstance(factory, MailFactory)
    return [render_one(catalog, factory, r) for r in requests]


class RenderPool:
    """One or more render processes (spawned, not forked: the worker has threads)."""

    def __init__(self, settings: Settings, key: bytes, install: str, processes: int,
                 min_batch: int = 32) -> None:
        self.min_batch = min_batch
        self._executor = ProcessPoolExecutor(
            max_workers=processes, mp_context=multiprocessing.get_context("spawn"),
            initializer=_start, initargs=(settings, key, install))

    def render(self, requests: list[RenderRequest], digest: str) -> list[RenderResult]:
        chunks = [requests[i:i + _CHUNK] for i in range(0, len(requests), _CHUNK)]
        results: list[RenderResult] = []
        for part in self._executor.map(_render_chunk, chunks, [digest] * len(chunks)):
            results.extend(part)
        return results

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
