"""The composition root's builders, kept apart from ``app.py`` (which alone imports this
module) so the root stays small: the webhook side task (the delivery loop over the outbox,
``engine.webhooks.WebhookDelivery``, wired for `nurture run`).
"""

from __future__ import annotations

import asyncio

from worker.adapters.db.webhook_store import WebhookStore
from worker.adapters.webhook_http import WebhookPoster
from worker.config import Settings
from worker.engine.contracts import SideJob
from worker.engine.webhooks import WebhookDelivery
from worker.metrics import Metrics
from worker.ports import Clock


def webhook_jobs(settings: Settings, outbox: WebhookStore | None, clock: Clock, worker_id: str,
                 metrics: Metrics) -> dict[str, SideJob]:
    """``{"webhooks": deliver}`` when an endpoint is enabled, else nothing. Every worker runs
    it: claims use SKIP LOCKED on PostgreSQL, so each event goes out through one of them."""
    if outbox is None:
        return {}

    async def deliver(stop: asyncio.Event) -> None:
        poster = WebhookPoster()
        delivery = WebhookDelivery(outbox, poster, settings.webhooks.enabled(), clock,
                                   max_age_h=settings.webhooks.max_age_h, worker_id=worker_id,
                                   observe=metrics.webhook_attempt)
        try:
            await delivery.run(stop)
        finally:
            await poster.close()

    return {"webhooks": deliver}
