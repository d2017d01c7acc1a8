"""A small OAuth 2.0 authorization server for the tests (http.server in a thread).

Endpoints, all on 127.0.0.1 and an ephemeral port:

- ``GET /authorize``: the authorization-code flow with PKCE (S256 only). It approves at once
  for the configured ``user`` (no login page) and redirects to the loopback ``redirect_uri``
  with ``code`` and ``state``; ``deny_next_authorize()`` makes the next one answer
  ``error=access_denied`` instead.
- ``POST /token``: grants ``authorization_code`` (checks ``code_verifier`` and
  ``redirect_uri``), ``refresh_token`` and ``client_credentials`` (checks ``client_secret``).
- ``POST /introspect`` (RFC 7662) and ``POST /revoke`` (RFC 7009; revoking a refresh token
  kills its grant: the refresh token and every access token issued from it).

Access tokens live ``access_ttl_s`` seconds; ``rotate_refresh=True`` replaces the refresh
token on every refresh, as Microsoft does. Errors are RFC 6749 JSON:
``{"error": "invalid_grant", "error_description": "..."}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlencode, urlsplit


@dataclass
class _Grant:
    user: str
    client_id: str
    scope: str
    refresh_token: str | None
    revoked: bool = False
    access_tokens: set[str] = field(default_factory=set)


@dataclass
class _Access:
    grant: _Grant
    expires_at: float
    revoked: bool = False


@dataclass
class _Code:
    grant_user: str
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


class OAuthError(Exception):
    """An RFC 6749 error answer: status, error code, description."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.status = status
        self.error = error
        self.description = description


class OAuthTestServer:
    """The authorization server; ``start()``/``close()`` or use as a context manager."""

    def __init__(self, *, user: str = "rep@example.test", client_id: str = "nurture-test",
                 client_secret: str = "test-secret", app_user: str = "app@example.test",
                 access_ttl_s: float = 5.0, rotate_refresh: bool = False) -> None:
        self.user = user
        self.rotate_refresh = rotate_refresh
        self.client_id = client_id
        self.client_secret = client_secret
        self.app_user = app_user
        self.access_ttl_s = access_ttl_s
        self.requests: Counter[str] = Counter()  # "token:refresh_token", "introspect", ...
        self._lock = threading.Lock()
        self._codes: dict[str, _Code] = {}
        self._grants: dict[str, _Grant] = {}  # by refresh token
        self._access: dict[str, _Access] = {}
        self._deny_next = False
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """Listen on 127.0.0.1, port 0, in a daemon thread."""
        owner = self

        class Handler(_Handler):
            server_owner = owner

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        name="oauth-test-server", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and close the socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("the OAuth test server is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def authorize_url(self) -> str:
        return f"{self.base_url}/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def introspect_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def revoke_url(self) -> str:
        return f"{self.base_url}/revoke"

    # -- test controls --------------------------------------------------------------------

    def deny_next_authorize(self) -> None:
        """The next /authorize redirects with ``error=access_denied``."""
        with self._lock:
            self._deny_next = True

    def issue(self, user: str | None = None, *, ttl_s: float | None = None,
              with_refresh: bool = True) -> tuple[str, str | None]:
        """Mint (access, refresh) for ``user`` directly, as if a flow had run."""
        with self._lock:
            grant = self._new_grant(user or self.user, self.client_id, "mail", with_refresh)
            access = self._new_access(grant, ttl_s)
        return access, grant.refresh_token

    def expire_all(self) -> None:
        """Every access token issued so far expires now (refresh tokens stay valid)."""
        with self._lock:
            for entry in self._access.values():
                entry.expires_at = 0.0

    def revoke_user(self, user: str) -> None:
        """Kill every grant of ``user``, as a password change or revoked consent would."""
        with self._lock:
            for grant in {id(g): g for g in self._all_grants()}.values():
                if grant.user == user:
                    self._kill(grant)

    def introspect(self, token: str) -> dict[str, Any]:
        """The RFC 7662 answer for ``token`` (what /introspect returns)."""
        with self._lock:
            self.requests["introspect"] += 1
            entry = self._access.get(token)
            if entry is None or entry.revoked or entry.grant.revoked \
                    or entry.expires_at <= time.time():
                return {"active": False}
            return {"active": True, "username": entry.grant.user, "sub": entry.grant.user,
                    "client_id": entry.grant.client_id, "scope": entry.grant.scope,
                    "token_type": "Bearer", "exp": int(entry.expires_at)}

    # -- protocol -------------------------------------------------------------------------

    def authorize(self, query: dict[str, str]) -> str:
        """The Location to redirect to; raises OAuthError when no redirect is allowed."""
        if query.get("client_id") != self.client_id:
            raise OAuthError(400, "invalid_client", "unknown client_id")
        redirect_uri = query.get("redirect_uri", "")
        parts = urlsplit(redirect_uri)
        if parts.scheme != "http" or parts.hostname not in ("127.0.0.1", "::1"):
            raise OAuthError(400, "invalid_request", "redirect_uri must be a loopback http URL")
        state = query.get("state", "")

        def back(**params: str) -> str:
            if state:
                params["state"] = state
            sep = "&" if parts.query else "?"
            return f"{redirect_uri}{sep}{urlencode(params)}"

        with self._lock:
            deny, self._deny_next = self._deny_next, False
        if deny:
            return back(error="access_denied", error_description="the user declined")
        if query.get("response_type") != "code":
            return back(error="unsupported_response_type", error_description="only code")
        if query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            return back(error="invalid_request", error_description="PKCE S256 is required")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[code] = _Code(self.user, self.client_id, redirect_uri,
                                      query["code_challenge"], query.get("scope", ""))
        return back(code=code)

    def token(self, form: dict[str, str], basic: tuple[str, str] | None) -> dict[str, Any]:
        """Answer a /token request (raises OAuthError)."""
        client_id, secret = basic or (form.get("client_id", ""), form.get("client_secret"))
        if client_id != self.client_id:
            raise OAuthError(401, "invalid_client", "unknown client_id")
        if secret is not None and secret != self.client_secret:
            raise OAuthError(401, "invalid_client", "wrong client_secret")
        grant_type = form.get("grant_type", "")
        with self._lock:
            self.requests[f"token:{grant_type}"] += 1
            if grant_type == "authorization_code":
                grant = self._redeem(form)
            elif grant_type == "refresh_token":
                grant = self._grants.get(form.get("refresh_token", ""))  # type: ignore[assignment]
                if grant is None or grant.revoked:
                    raise OAuthError(400, "invalid_grant", "refresh token revoked or unknown")
                if self.rotate_refresh and grant.refresh_token:
                    # As Microsoft does: a new refresh token each time, the old one dies.
                    del self._grants[grant.refresh_token]
                    grant.refresh_token = secrets.token_urlsafe(32)
                    self._grants[grant.refresh_token] = grant
            elif grant_type == "client_credentials":
                if secret is None:
                    raise OAuthError(401, "invalid_client", "client_secret required")
                grant = self._new_grant(self.app_user, client_id, form.get("scope", ""), False)
            else:
                raise OAuthError(400, "unsupported_grant_type", f"{grant_type!r}")
            access = self._new_access(grant, None)
        answer: dict[str, Any] = {"access_token": access, "token_type": "Bearer",
                                  "expires_in": int(self.access_ttl_s), "scope": grant.scope}
        if grant.refresh_token:
            answer["refresh_token"] = grant.refresh_token
        return answer

    def revoke(self, token: str) -> None:
        """RFC 7009: unknown tokens are ignored; a refresh token kills its whole grant."""
        with self._lock:
            self.requests["revoke"] += 1
            grant = self._grants.get(token)
            if grant is not None:
                self._kill(grant)
            elif token in self._access:
                self._access[token].revoked = True

    # -- internals (call with the lock held) ---------------------------------------------

    def _redeem(self, form: dict[str, str]) -> _Grant:
        code = self._codes.pop(form.get("code", ""), None)  # single use
        if code is None:
            raise OAuthError(400, "invalid_grant", "authorization code unknown or used")
        if form.get("redirect_uri") != code.redirect_uri:
            raise OAuthError(400, "invalid_grant", "redirect_uri does not match")
        verifier = form.get("code_verifier", "")
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
            raise OAuthError(400, "invalid_grant", "code_verifier does not match")
        return self._new_grant(code.grant_user, code.client_id, code.scope, True)

    def _new_grant(self, user: str, client_id: str, scope: str, with_refresh: bool) -> _Grant:
        refresh = secrets.token_urlsafe(32) if with_refresh else None
        grant = _Grant(user, client_id, scope, refresh)
        if refresh:
            self._grants[refresh] = grant
        return grant

    def _new_access(self, grant: _Grant, ttl_s: float | None) -> str:
        token = secrets.token_urlsafe(32)
        ttl = self.access_ttl_s if ttl_s is None else ttl_s
        self._access[token] = _Access(grant, time.time() + ttl)
        grant.access_tokens.add(token)
        return token

    def _all_grants(self) -> list[_Grant]:
        return [*self._grants.values(), *(a.grant for a in self._access.values())]

    def _kill(self, grant: _Grant) -> None:
        grant.revoked = True
        for token in grant.access_tokens:
            self._access[token].revoked = True


class _Handler(BaseHTTPRequestHandler):
    server_owner: OAuthTestServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: pytest shows failures, not every request."""

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path != "/authorize":
            self._json(404, {"error": "not_found"})
            return
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        try:
            location = self.server_owner.authorize(query)
        except OAuthError as exc:
            self._error(exc)
            return
        self.send_response(302)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace")
        form = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
        owner = self.server_owner
        path = urlsplit(self.path).path
        try:
            if path == "/token":
                self._json(200, owner.token(form, self._basic()))
            elif path == "/introspect":
                self._json(200, owner.introspect(form.get("token", "")))
            elif path == "/revoke":
                owner.revoke(form.get("token", ""))
                self._json(200, {})
            else:
                self._json(404, {"error": "not_found"})
        except OAuthError as exc:
            self._error(exc)

    def _basic(self) -> tuple[str, str] | None:
        header = self.headers.get("Authorization", "")
        if not header.lower().startswith("basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return unquote(user), unquote(password)

    def _error(self, exc: OAuthError) -> None:
        self._json(exc.status, {"error": exc.error, "error_description": exc.description})

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
