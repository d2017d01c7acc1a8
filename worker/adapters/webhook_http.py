"""The webhook door: sign an event per Standard Webhooks and post it with httpx.

Safety: only http and https URLs; redirects are not followed (a 3xx is a failed attempt, so a
receiver cannot bounce our signed bodies elsewhere); at most ``MAX_ANSWER_BYTES`` of an
answer are read; the whole exchange is bounded by the endpoint's ``timeout_s``. Logs name the
endpoint, never its URL (hook URLs often carry a token in the path) nor its secret.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from worker.domain.webhook_retry import SECRET_PREFIX, Attempt, Outcome

MAX_ANSWER_BYTES = 64 * 1024
USER_AGENT = "nurture-webhooks/1"
log = logging.getLogger(__name__)


def new_secret(n_bytes: int = 32) -> str:
    """A fresh signing secret in the Standard Webhooks form: ``whsec_`` + base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(n_bytes)).decode("ascii")


def signed_headers(secret: str, webhook_id: str, at: datetime, body: str) -> dict[str, str]:
    """The three Standard Webhooks headers for ``body`` sent at ``at``."""
    # The library reads the datetime as UTC whatever its zone: hand it UTC.
    at = at.astimezone(UTC)
    signature = Webhook(secret).sign(msg_id=webhook_id, timestamp=at, data=body)
    return {"webhook-id": webhook_id, "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": signature, "content-type": "application/json",
            "user-agent": USER_AGENT}


class WebhookPoster:
    """Posts signed events. One ``httpx.AsyncClient`` (connection pool) for every endpoint;
    call ``close`` when done."""

    def __init__(self, client: httpx.AsyncClient | None = None) -> None:
        self.client = client or httpx.AsyncClient(follow_redirects=False, trust_env=False)
        # The webhook-timestamp is checked by the receiver against its own clock: it is the
        # wall time of the attempt, not the worker's scheduling clock.
        self.wall: Callable[[], datetime] = lambda: datetime.now(UTC)

    async def close(self) -> None:
        """Close the pooled connections."""
        await self.client.aclose()

    async def post(self, *, endpoint: str, url: str, secret: str, webhook_id: str, body: str,
                   timeout_s: float) -> Attempt:
        """Post one event; a 2xx is delivered, anything else (status, timeout, refused
        connection, redirect) is an attempt to retry."""
        if urlsplit(url).scheme not in ("http", "https"):
            return Attempt(Outcome.RETRY, error="only http and https URLs are posted to")
        headers = signed_headers(secret, webhook_id, self.wall(), body)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout_s):
                status, answer = await self._exchange(url, headers, body, timeout_s)
        except TimeoutError:
            return self._done(endpoint, webhook_id, started,
                              Attempt(Outcome.RETRY, error=f"timed out after {timeout_s:g} s"))
        except httpx.HTTPError as exc:
            # The exception text names the URL for some errors: keep only its kind.
            error = f"{type(exc).__name__}: {_reason(exc)}"
            return self._done(endpoint, webhook_id, started, Attempt(Outcome.RETRY, error=error))
        if 200 <= status < 300:
            return self._done(endpoint, webhook_id, started,
                              Attempt(Outcome.DELIVERED, status, answer_bytes=len(answer)))
        words = answer.decode("utf-8", "replace").strip()[:200]
        if 300 <= status < 400:
            words = "redirect not followed"
        return self._done(endpoint, webhook_id, started,
                          Attempt(Outcome.RETRY, status, f"HTTP {status}: {words}".strip(),
                                  answer_bytes=len(answer)))

    async def _exchange(self, url: str, headers: dict[str, str], body: str,
                        timeout_s: float) -> tuple[int, bytes]:
        async with self.client.stream("POST", url, content=body.encode("utf-8"), headers=headers,
                                      timeout=timeout_s) as response:
            answer = bytearray()
            async for chunk in response.aiter_raw():
                answer += chunk
                if len(answer) >= MAX_ANSWER_BYTES:
                    break  # closing the stream drops the rest of a big answer
            return response.status_code, bytes(answer[:MAX_ANSWER_BYTES])

    @staticmethod
    def _done(endpoint: str, webhook_id: str, started: float, attempt: Attempt) -> Attempt:
        elapsed = time.monotonic() - started
        log.info("action=webhook_%s endpoint=%s webhook_id=%s status=%s elapsed_s=%.3f error=%s",
                 attempt.outcome.value, endpoint, webhook_id, attempt.status, elapsed,
                 attempt.error or "-")
        return Attempt(attempt.outcome, attempt.status, attempt.error, elapsed,
                       attempt.answer_bytes)


def _reason(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or unreachable"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the receiver broke the HTTP exchange"
    return "transport error"
