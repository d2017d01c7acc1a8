"""``nurture webhooks ...``: ``secret`` (a new signing secret), ``list`` (each endpoint's
outbox), ``test NAME`` (post a ``ping`` now, print the answer), ``replay NAME`` (queue an
endpoint's events again, same ids, for the running worker to deliver)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime

from worker.adapters.db.webhook_store import WebhookStore, new_webhook_id
from worker.adapters.webhook_http import WebhookPoster, new_secret
from worker.app import App
from worker.config import Settings
from worker.config_webhooks import WebhookEndpointSettings
from worker.domain.webhook_retry import Attempt
from worker.domain.webhooks import ping
from worker.errors import UserError


def secret(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Print a new Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes); it
    reads no configuration, so it works before the first endpoint is set up."""
    print(new_secret())
    return 0


def _outbox(app: App) -> WebhookStore:
    """The outbox over every configured endpoint, enabled or not (to show them all)."""
    app.db.check_schema()
    every = {n: ep.event_filter() for n, ep in app.settings.webhooks.endpoints.items()}
    return WebhookStore(app.db.engine, every, app.clock)


def _endpoint(app: App, name: str) -> WebhookEndpointSettings:
    ep = app.settings.webhooks.endpoints.get(name)
    if ep is None:
        known = ", ".join(sorted(app.settings.webhooks.endpoints)) or "none configured"
        raise UserError(f"no webhook endpoint {name!r} (known: {known})")
    return ep


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


def list_(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Each endpoint: pending, delivered, failed, the last error and when."""
    app = App(settings())
    endpoints = app.settings.webhooks.endpoints
    rows = []
    for name, st in _outbox(app).stats().items():
        ep = endpoints.get(name)
        rows.append({"endpoint": name, "url": ep.url if ep else None,
                     "enabled": bool(ep and ep.enabled), "pending": st.pending,
                     "delivered": st.delivered, "failed": st.failed,
                     "last_error": st.last_error, "last_error_at": _iso(st.last_error_at),
                     "last_delivered_at": _iso(st.last_delivered_at)})
    if args.json:
        print(json.dumps({"endpoints": rows}, indent=2))
        return 0
    if not rows:
        print("no webhook endpoint configured ([webhooks.NAME] in the configuration)")
    for r in rows:
        state = "" if r["enabled"] else " (disabled)" if r["url"] else " (not configured)"
        print(f"{r['endpoint']}{state}: {r['url'] or '-'}\n  pending {r['pending']}, delivered "
              f"{r['delivered']}, failed {r['failed']}")
        if r["last_error"]:
            print(f"  last error {r['last_error_at']}: {r['last_error']}")
    return 0


def test(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Post a ``ping`` to one endpoint now (not through the outbox) and print the answer;
    exit 1 unless it answered 2xx."""
    app = App(settings())
    ep = _endpoint(app, args.name)
    event = ping(app.clock.now(), args.name)

    async def post() -> Attempt:
        poster = WebhookPoster()
        try:
            return await poster.post(endpoint=args.name, url=ep.url, secret=ep.secret.reveal(),
                                     webhook_id=new_webhook_id(), body=event.body_json(),
                                     timeout_s=ep.timeout_s)
        finally:
            await poster.close()

    attempt = asyncio.run(post())
    if attempt.delivered:
        print(f"{args.name}: delivered (HTTP {attempt.status}, {attempt.elapsed_s:.2f} s)")
        return 0
    print(f"{args.name}: not delivered: {attempt.error}")
    return 1


def replay(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Queue an endpoint's delivered and failed events again (or only the failed ones),
    from ``--since`` on, under their own ``webhook-id``; the worker sends them."""
    app = App(settings())
    _endpoint(app, args.name)
    since = None
    if args.since:
        try:
            since = datetime.fromisoformat(args.since)
        except ValueError:
            raise UserError(f"--since: not an ISO date or time: {args.since!r}") from None
        if since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    count = _outbox(app).replay(args.name, since, failed_only=args.failed)
    what = "failed event(s)" if args.failed else "event(s)"
    print(f"{args.name}: {count} {what} queued again (same webhook-id); the running worker "
          "delivers them")
    return 0
