"""The one-shot loopback listener of a native-app sign-in (RFC 8252, section 7.3).

It listens on 127.0.0.1 on a port the system picks, answers exactly one request on its
callback path with a short page, and hands back the ``code`` if ``state`` matches. An
``error=`` redirect becomes ``OAuthError`` with the provider's words; no redirect before the
timeout is ``LoginTimeout``.
"""

from __future__ import annotations

import contextlib
import html
import queue
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from worker.adapters.oauth2 import AuthorizationRequest, OAuth2TokenClient, TokenSet
from worker.errors import LoginTimeout, OAuthError

CALLBACK_PATH = "/callback"


class LoopbackListener:
    """Bind at construction (so the redirect URI is known), wait with ``wait_for_code``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._answers: queue.Queue[dict[str, str]] = queue.Queue(maxsize=1)
        answers = self._answers

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                if parts.path != CALLBACK_PATH:
                    self.send_error(404)
                    return
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                ok = "code" in query and "error" not in query
                text = ("Signed in. You can close this tab and go back to the terminal."
                        if ok else "Sign-in failed: "
                        + html.escape(query.get("error_description") or
                                      query.get("error", "no code in the redirect")))
                body = f"<!doctype html><title>Nurture</title><p>{text}</p>".encode()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
                # A second hit (a reload) is ignored: the first answer counts.
                with contextlib.suppress(queue.Full):
                    answers.put_nowait(query)

            def log_message(self, format: str, *args: Any) -> None:
                """The query holds the code: never logged."""

        self._server = HTTPServer((host, port), Handler)
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        """What to register with the provider (any port on 127.0.0.1, per RFC 8252)."""
        return f"http://{self.host}:{self.port}{CALLBACK_PATH}"

    def wait_for_code(self, state: str, timeout_s: float) -> str:
        """Serve until the redirect arrives; return its code. Always closes the socket."""
        thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.1}, name="oauth-loopback", daemon=True)
        thread.start()
        try:
            query = self._answers.get(timeout=timeout_s)
        except queue.Empty:
            raise LoginTimeout("timeout", f"no sign-in within {timeout_s:g} s") from None
        finally:
            self._server.shutdown()
            self._server.server_close()
            thread.join(5)
        if "error" in query:
            raise OAuthError(query["error"], query.get("error_description", ""))
        if query.get("state") != state:
            # Someone else's redirect (or a forged one): never exchange its code.
            raise OAuthError("invalid_state", "the redirect's state does not match this sign-in")
        if not query.get("code"):
            raise OAuthError("invalid_request", "the redirect carried no code")
        return query["code"]

    def close(self) -> None:
        """Release the port without waiting (when the sign-in is abandoned)."""
        self._server.server_close()


def sign_in(client: OAuth2TokenClient, *, timeout_s: float,
            show_url: Callable[[AuthorizationRequest], None]) -> TokenSet:
    """The whole authorization-code flow: listen, show the URL, wait, exchange the code."""
    listener = LoopbackListener()
    try:
        request = client.authorization_request(listener.redirect_uri)
        show_url(request)
        code = listener.wait_for_code(request.state, timeout_s)
    finally:
        listener.close()
    return client.exchange_code(request, code)
