"""The HTTP door: Starlette on uvicorn, inside the worker's own event loop.

``serve`` listens on ``http.host:http.port`` (loopback by default) and returns a task that
ends once the runner stops. Signals stay the runner's: uvicorn is told not to install its
own SIGINT/SIGTERM handlers. Database work never runs on the event loop: writes go to a
small thread pool of the server's own (one thread on SQLite), reads (health, metrics, the
unsubscribe page) to the loop's default pool.

Routes: ``POST /api/leads``, ``POST /api/events``, ``POST /api/leads/{email}/unsubscribe``
(``api``); ``GET|POST /u/{token}``,
``GET /healthz``, ``GET /metrics`` (``pages``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from worker.adapters.http.api import Api
from worker.adapters.http.context import Context, HttpPorts, LoopState
from worker.adapters.http.io import (
    Boundary,
    HttpError,
    on_http_error,
    on_starlette_error,
    on_store_error,
    on_unexpected,
)
from worker.adapters.http.pages import Pages
from worker.errors import ConfigError, StoreError

log = logging.getLogger(__name__)
_STARTUP_TIMEOUT_S = 10.0


def build_asgi(ctx: Context) -> ASGIApp:
    """The ASGI application: routes, JSON errors, and the request boundary around it all."""
    api, pages = Api(ctx), Pages(ctx)
    routes: list[BaseRoute] = [
        Route("/api/leads", api.leads, methods=["POST"]),
        Route("/api/events", api.events, methods=["POST"]),
        Route("/api/leads/{email}/unsubscribe", api.unsubscribe, methods=["POST"]),
        Route("/u/{token}", pages.unsubscribe_page, methods=["GET"]),
        Route("/u/{token}", pages.unsubscribe, methods=["POST"]),
        Route("/healthz", pages.healthz, methods=["GET"]),
        Route("/metrics", pages.metrics, methods=["GET"]),
    ]
    # --- workspace (issue 17): the /app pages, built by the composition root ---
    if ctx.app.workspace is not None:
        routes.append(ctx.app.workspace)
    starlette = Starlette(routes=routes, exception_handlers={
        HttpError: on_http_error, HTTPException: on_starlette_error, StoreError: on_store_error,
        Exception: on_unexpected})
    # No redirect to the path with or without its final slash: Starlette builds that
    # Location from the Host header, which the client chooses (/u/TOKEN/ answers 404).
    starlette.router.redirect_slashes = False
    http = ctx.app.settings.http
    return Boundary(starlette, http.max_body_bytes, http.timeout_s)


class _BoundedH11(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline on each request head: uvicorn times only
    idle keep-alive connections, and any byte cancels that, so a client sending half a
    request (or one byte a second) held its connection for ever. The head of each request
    must now be complete within ``http.timeout_s`` of the connection (or of the previous
    answer), else the connection is closed."""

    head_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        self._start_head_timer()

    def data_received(self, data: bytes) -> None:
        waiting_for = self.cycle
        super().data_received(data)
        if self.cycle is not waiting_for and self._head_timer is not None:
            self._head_timer.cancel()  # a whole request head arrived
            self._head_timer = None

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        super().connection_lost(exc)

    def _start_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(self.head_timeout_s, self._head_too_slow)

    def _head_too_slow(self) -> None:
        self._head_timer = None
        if not self.transport.is_closing():
            log.info("action=http_head_timeout timeout_s=%s", self.head_timeout_s)
            self.transport.close()


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the worker's runner owns SIGTERM and SIGINT
    (uvicorn would replace them for its lifetime and raise the signal again on exit)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so a busy port is a clear error, not uvicorn's
    ``sys.exit`` inside the worker's loop."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
        family, kind, proto, _, address = infos[0]
        sock = socket.socket(family, kind, proto)
    except OSError as exc:
        raise ConfigError("http.host", f"cannot listen on {host}:{port}: {exc}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError("http.port", f"cannot listen on {host}:{port}: {exc.strerror or exc}"
                          " (another process uses it? set http.port or NURTURE_HTTP__PORT, or "
                          "http.enabled = false)") from None
    return sock


async def serve(app: HttpPorts, runner: LoopState) -> asyncio.Task[None]:
    """Start serving; the returned task ends after ``runner.stop_event`` (graceful: requests
    in flight finish within the worker's grace period)."""
    http = app.settings.http
    sock = listen(http.host, http.port)
    bound = sock.getsockname()
    # SQLite takes one writer at a time, and waiting writers back off in sleeps of up to
    # 100 ms: one thread queues HTTP writes far faster than several threads contending.
    workers = 1 if app.db.is_sqlite else max(2, min(app.settings.database.pool_size, 8))
    ctx = Context(app, runner, app.secret_key,
                  ThreadPoolExecutor(workers, thread_name_prefix="nurture-http"))
    protocol = type("BoundedH11", (_BoundedH11,), {"head_timeout_s": http.timeout_s})
    config = uvicorn.Config(build_asgi(ctx), log_config=None, log_level="warning", http=protocol,
                            lifespan="off", access_log=False, server_header=False,
                            proxy_headers=False, timeout_keep_alive=5,
                            timeout_graceful_shutdown=int(max(app.settings.worker.grace_s, 1)))
    server = _EmbeddedServer(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]), name="http-server")
    deadline = asyncio.get_running_loop().time() + _STARTUP_TIMEOUT_S
    while not server.started and not serving.done():
        if asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.005)
    if not server.started:
        server.should_exit = True
        await _finish(serving, ctx, sock)
        raise ConfigError("http", f"the HTTP server did not start on {http.host}:{bound[1]}")
    log.info("action=http_listening address=%s:%d public_url=%s", bound[0], bound[1],
             http.base_url())
    if not http.public_url and http.host in ("", "0.0.0.0", "::"):
        log.warning("action=http_public_url_missing detail=%r", "unsubscribe links point at "
                    f"{http.base_url()}, which no reader can open: set http.public_url "
                    "(NURTURE_HTTP__PUBLIC_URL)")
    return asyncio.create_task(_until_stopped(server, serving, runner, ctx, sock), name="http")


async def _until_stopped(server: uvicorn.Server, serving: asyncio.Task[None], runner: LoopState,
                         ctx: Context, sock: socket.socket) -> None:
    stopping = asyncio.create_task(runner.stop_event.wait())
    try:
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if serving.done() and not runner.stop_event.is_set():
            log.error("action=http_stopped_early error=%r", repr(serving.exception())
                      if not serving.cancelled() and serving.exception() else "stopped")
    finally:
        stopping.cancel()
        server.should_exit = True
        await _finish(serving, ctx, sock)


async def _finish(serving: asyncio.Task[None], ctx: Context, sock: socket.socket) -> None:
    """Let uvicorn close its connections (even when our own task is being cancelled)."""
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait({serving}, timeout=ctx.app.settings.worker.grace_s + 2)
    if not serving.done():
        serving.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await serving
    sock.close()
    ctx.pool.shutdown(wait=False, cancel_futures=True)
