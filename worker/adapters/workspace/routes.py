"""The workspace's routes under ``/app``, with its security headers on every answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Match, Mount, Route, Router
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.adapters.workspace.auth import Auth
from worker.adapters.workspace.campaign_page import CampaignPage
from worker.adapters.workspace.lists import Lists
from worker.adapters.workspace.pages import Handler, Pages
from worker.adapters.workspace.ports import WorkspacePorts

# No inline script or style, nothing from another origin, no framing, no referrer.
# The campaign page's charts are data: SVG images (an image runs no script).
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
           (b"referrer-policy", b"no-referrer"), (b"x-content-type-options", b"nosniff"),
           (b"cache-control", b"no-store")]


class SecurityHeaders:
    """Adds ``HEADERS`` to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)
        await self.app(scope, receive, with_headers)


def build(ports: WorkspacePorts) -> Mount:
    """The ``/app`` mount: pages, form actions, static files."""
    pages = Pages(ports, Auth(ports))
    lists = Lists(pages)
    get = pages.signed_in

    def post(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return pages.signed_in(handler, post=True)
    routes = [
        Route("/", get(pages.today), methods=["GET"]),
        Route("/login", pages.login_form, methods=["GET"]),
        Route("/login", pages.login, methods=["POST"]),
        Route("/login/{token}", pages.open_link, methods=["GET"]),
        Route("/logout", post(pages.logout), methods=["POST"]),
        Route("/leads", get(lists.leads), methods=["GET"]),
        Route("/leads/{lead_id:int}", get(pages.lead), methods=["GET"]),
        Route("/leads/{lead_id:int}/action", post(pages.lead_action), methods=["POST"]),
        Route("/tasks/{touch_id:int}/done", post(pages.task_done), methods=["POST"]),
        Route("/tasks/{touch_id:int}/snooze", post(pages.task_snooze), methods=["POST"]),
        Route("/replies/{inbound_id:int}/reclassify", post(pages.reclassify),
              methods=["POST"]),
        Route("/replies/{inbound_id:int}/handled", post(pages.reply_handled),
              methods=["POST"]),
        Route("/campaigns", get(lists.campaigns), methods=["GET"]),
        Route("/campaigns/{slug}", get(CampaignPage(pages)), methods=["GET"]),
        Route("/team", get(lists.team), methods=["GET"]),
        Mount("/static", StaticFiles(directory=Path(__file__).parent / "static")),
    ]
    router = Router(routes, redirect_slashes=False)
    return AppMount("/app", app=SecurityHeaders(router))


class AppMount(Mount):
    """The ``/app`` mount, which also answers ``/app`` itself with a redirect to ``/app/``:
    a Location of our own path only, never built from the client's Host header."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if _bare(scope):
            return Match.FULL, {}
        return super().matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if _bare(scope):
            answer = RedirectResponse("/app/", status_code=308)
            await SecurityHeaders(answer)(scope, receive, send)
            return
        await super().handle(scope, receive, send)


def _bare(scope: Scope) -> bool:
    """The request is for ``/app`` itself (within whatever root path the server has)."""
    root = scope.get("root_path", "")
    path: str = scope.get("path", "")
    return scope["type"] == "http" and path.removeprefix(root) == "/app"
