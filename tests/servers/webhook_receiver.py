"""A webhook receiver for the tests: a real HTTP server on a loopback port (stdlib
``ThreadingHTTPServer`` in its own thread) that verifies every request's signature with the
``standardwebhooks`` package and records what it got.

On cue it answers differently: ``refuse`` (500), ``hang`` (never answers before the client's
timeout), ``slow`` (answers 200 after a delay), ``redirect`` (302 to ``/elsewhere``), ``big``
(200 with a 1 MB body) or is ``down`` (the listening socket closed; ``up`` reopens the same
port). A cue applies to every request until changed (``mode = "ok"`` to reset).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.servers._util import free_port

BIG_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Received:
    """One request the receiver read: its headers, body, whether the signature verified,
    and what the receiver answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def webhook_id(self) -> str:
        return self.headers.get("webhook-id", "")

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet: pytest shows what matters

    def do_POST(self) -> None:
        owner = self.server.owner
        length = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            Webhook(owner.secret).verify(body, headers, json_parse=False)
            verified = True
        except WebhookVerificationError:
            verified = False
        mode = owner.mode
        status = {"ok": 200, "refuse": 500, "slow": 200, "redirect": 302, "big": 200,
                  "hang": 0}.get(mode, 200)
        if not verified and mode == "ok":
            status = 401
        owner._record(Received(self.path, headers, body, verified, status))
        if mode == "hang":
            owner._release.wait(owner.hang_s)
            return
        if mode == "slow":
            owner._release.wait(owner.slow_s)
        self.send_response(status)
        if mode == "redirect":
            self.send_header("location", "/elsewhere")
        payload = b"x" * BIG_BYTES if mode == "big" else b"refused" if status >= 500 else b"ok"
        self.send_header("content-length", str(len(payload)))
        self.end_headers()
        try:
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            owner.cut_answers += 1  # the client stopped reading (the 64 KB limit)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # A worker posts a batch (50) at once; the default backlog of 5 resets connections.
    request_queue_size = 128
    owner: WebhookReceiver


class WebhookReceiver:
    """Start with ``start()`` (or as a context manager); ``url`` is where to post."""

    def __init__(self, secret: str, port: int | None = None) -> None:
        self.secret = secret
        self.port = port or free_port()
        self.mode = "ok"
        self.slow_s = 0.5
        self.hang_s = 30.0
        self.cut_answers = 0
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.arrived = threading.Condition(self._lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _record(self, item: Received) -> None:
        with self._lock:
            self.received.append(item)
            self.arrived.notify_all()

    def delivered(self) -> list[Received]:
        """Requests that verified and were answered 2xx: what a CRM would have kept."""
        with self._lock:
            return [r for r in self.received if r.verified and 200 <= r.answered < 300]

    def wait_for(self, count: int, timeout_s: float = 10.0) -> list[Received]:
        """Block until ``count`` requests arrived (any answer); return them all."""
        with self._lock:
            self.arrived.wait_for(lambda: len(self.received) >= count, timeout_s)
            return list(self.received)

    def up(self) -> Self:
        """Listen (again, on the same port)."""
        self._release.clear()
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, name="webhook-receiver",
                                        daemon=True)
        self._thread.start()
        return self

    start = up

    def down(self) -> None:
        """Stop listening: a connection is refused until ``up``."""
        self._release.set()  # hung and slow handlers answer now
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    stop = down

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
