"""The unsubscribe pages (``/u/{token}``), ``/healthz`` and ``/metrics``.

A GET of an unsubscribe link only shows a confirm button: mail scanners fetch links, and a
fetch must change nothing. The POST (RFC 8058 one-click, or the page's button) suppresses
the lead at once, for every campaign.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from worker.adapters.http.io import answer
from worker.domain.tokens import read_unsubscribe_token
from worker.domain.webhook_retry import EndpointStats, webhook_problems
from worker.errors import StoreError
from worker.metrics import health_problems

if TYPE_CHECKING:
    from worker.adapters.http.context import Context

log = logging.getLogger(__name__)
PING_TIMEOUT_S = 5.0

_STYLE = ("body{font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;"
          "background:#f4f4f1;color:#1f1f1f}main{max-width:32rem;margin:10vh auto;padding:2rem;"
          "background:#fff;border-radius:10px;box-shadow:0 1px 4px rgba(0,0,0,.12)}"
          "h1{font-size:1.35rem;margin:0 0 1rem}p{margin:0 0 1rem}"
          "button{font:inherit;padding:.6rem 1.4rem;border:0;border-radius:6px;"
          "background:#a3261e;color:#fff;cursor:pointer}button:focus{outline:3px solid #f2b8b5}")
CONFIRM = ("Unsubscribe?", (
    "<p>Confirm to stop every email from us to this address, from every list and sequence. "
    "Nothing changes until you press the button.</p>"
    '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
    '<button type="submit">Unsubscribe</button></form>'))
DONE = ("You are unsubscribed", (
    "<p>We will send no more email to this address. You can close this page.</p>"))
ALREADY = ("You are already unsubscribed", (
    "<p>This address gets no email from us; nothing more needed to change. You can close "
    "this page.</p>"))
INVALID = ("This link does not work", (
    "<p>The unsubscribe link is incomplete or was changed. Open it again from the email, or "
    "reply to the email with the word <em>unsubscribe</em>.</p>"))


def page(status: int, content: tuple[str, str]) -> HTMLResponse:
    """A small self-contained page: inline style, no script, no external asset."""
    title, body = content
    text = ('<!doctype html><html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="robots" content="noindex"><title>{html.escape(title)}</title>'
            f"<style>{_STYLE}</style></head><body><main><h1>{html.escape(title)}</h1>{body}"
            "</main></body></html>")
    return HTMLResponse(text, status_code=status)


class Pages:
    """The unsubscribe page, /healthz and /metrics."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- unsubscribe -----------------------------------------------------------------------

    def _lead_of(self, request: Request) -> int | None:
        found = read_unsubscribe_token(self.ctx.secret_key, request.path_params["token"])
        return found[0] if found else None

    async def unsubscribe_page(self, request: Request) -> Response:
        """GET: the confirm page (or "already unsubscribed"); changes nothing."""
        lead_id = self._lead_of(request)
        if lead_id is None:
            return page(404, INVALID)
        done = await asyncio.to_thread(self._unsubscribed, lead_id)
        return page(200, ALREADY if done else CONFIRM)

    async def unsubscribe(self, request: Request) -> Response:
        """POST: RFC 8058 one-click (``List-Unsubscribe=One-Click``) or the page's button.
        Any body within the size limit is accepted: the signed token is the authority."""
        lead_id = self._lead_of(request)
        await request.body()  # read (and size-check) whatever came, then answer
        if lead_id is None:
            return page(404, INVALID)
        changed = await self.ctx.run(self.ctx.app.by_hand.unsubscribe, lead_id, "one-click")
        if changed:
            log.info("action=unsubscribe_link lead_id=%d", lead_id)
        return page(200, DONE if changed else ALREADY)

    def _unsubscribed(self, lead_id: int) -> bool:
        db = self.ctx.app.db
        lead = db.lead_by_id(lead_id)
        return lead is None or db.suppression_for(lead.email) is not None

    # --- ops -------------------------------------------------------------------------------

    async def healthz(self, request: Request) -> Response:
        """200 while the database answers, else 503; the state of each door."""
        try:
            # Reads go to the default pool, not behind queued writes: a busy API must
            # not look like a dead database.
            db_ok = await asyncio.wait_for(asyncio.to_thread(self.ctx.app.db.ping),
                                           timeout=PING_TIMEOUT_S)
        except TimeoutError:
            db_ok = False
        backlog: tuple[int | None, float | None] = (None, None)
        states: dict[str, datetime | None] = {}
        stopped: Mapping[str, str] = {}
        hooks: Mapping[str, EndpointStats] = {}
        if db_ok:
            try:
                hooks = await asyncio.to_thread(self.ctx.app.db.webhook_stats)
                backlog = await asyncio.to_thread(self._backlog)
                states = await asyncio.to_thread(self._stored_mailbox_states)
                stopped = await asyncio.to_thread(self.ctx.app.stopped)
            except StoreError as exc:
                log.warning("action=healthz_store_failed error=%r", str(exc)[:300])
        for box in self.ctx.app.inbound:
            seen = box.last_success_at
            if seen is not None and (states.get(box.name) is None or seen > states[box.name]):  # type: ignore[operator]
                states[box.name] = seen
            states.setdefault(box.name, None)
        runner = self.ctx.runner
        body: dict[str, Any] = {
            "status": "ok" if db_ok else "unavailable",
            "database": "ok" if db_ok else "unreachable",
            "smtp_last_success_at": _iso(runner.last_send_ok_at),
            "smtp_last_error": runner.last_send_error,
            "imap_last_success_at": {name: _iso(at) for name, at in sorted(states.items())},
            "due_backlog": backlog[0],
            "oldest_due_lag_s": backlog[1],
            "mailboxes_stopped": dict(sorted(stopped.items())),  # "paused: bounce rate ..."
        }
        # Still 200 (a liveness check), but say so when a door has been failing a while.
        problems = health_problems(
            self.ctx.app.clock.now(), runner.smtp_failing_since, runner.last_send_error,
            {box.name: states.get(box.name) for box in self.ctx.app.inbound}, runner.started_at_wall)
        problems += [f"mailbox {name} {why}" for name, why in sorted(stopped.items())]
        problems += webhook_problems(hooks, self.ctx.app.clock.now())
        if db_ok and problems:
            body.update(status="degraded", problems=problems)
        return answer(200 if db_ok else 503, body)

    def _backlog(self) -> tuple[int, float]:
        now = self.ctx.app.clock.now()
        count, oldest = self.ctx.app.db.due_backlog(now)
        lag = max((now - oldest).total_seconds(), 0.0) if oldest is not None else 0.0
        return count, round(lag, 3)

    def _stored_mailbox_states(self) -> dict[str, datetime | None]:
        out: dict[str, datetime | None] = {}
        for row in self.ctx.app.db.mailbox_states():
            current = out.get(row.mailbox)
            if row.last_success_at is not None and (current is None
                                                    or row.last_success_at > current):
                out[row.mailbox] = row.last_success_at
            else:
                out.setdefault(row.mailbox, current)
        return out

    async def metrics(self, request: Request) -> Response:
        """Prometheus text; the backlog gauges are read from the database at scrape time."""
        data = await asyncio.to_thread(self.ctx.app.metrics.render, self._refresh_backlog)
        return Response(data, media_type=CONTENT_TYPE_LATEST)

    def _refresh_backlog(self) -> None:
        try:
            count, lag = self._backlog()
        except StoreError as exc:
            log.warning("action=metrics_backlog_failed error=%r", str(exc)[:300])
            return
        self.ctx.app.metrics.set_backlog(count, lag)
        with contextlib.suppress(StoreError):
            self.ctx.app.metrics.set_webhook_backlog(
                {n: s.pending for n, s in self.ctx.app.db.webhook_stats().items()})


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None

