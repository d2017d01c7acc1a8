"""The OAuth 2.0 token client: sign-in URL with PKCE, code exchange, refresh, client credentials.

authlib builds the sign-in URL and the RFC 7636 S256 challenge; httpx posts the token
requests (authlib's own httpx integration is being moved to another package). Errors are
translated at this boundary into ``worker.errors.OAuthError``; a refused refresh
(``invalid_grant``) is ``GrantRevokedError``, so callers can stop the mailbox and ask for a
new sign-in. ``TokenSource`` hands out a live access token, refreshing ``skew_s`` before it
expires and on ``force_refresh()`` when a server refuses one.

Tokens are never logged and never part of an exception's text.
"""

from __future__ import annotations

import logging
import secrets
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from worker.config_mail import OAuth2Settings
from worker.domain.oauth_providers import OAuthEndpoints, endpoints
from worker.errors import GrantRevokedError, OAuthError

log = logging.getLogger(__name__)

DEFAULT_EXPIRES_IN_S = 3600  # when a provider omits expires_in (RFC 6749 5.1: RECOMMENDED)


@dataclass(frozen=True)
class TokenSet:
    """One token response. ``expires_at`` is epoch seconds."""

    access_token: str
    expires_at: float
    refresh_token: str | None = None
    scope: str = ""

    def __repr__(self) -> str:  # never show the tokens
        return f"TokenSet(expires_at={self.expires_at:.0f}, scope={self.scope!r})"


@dataclass(frozen=True)
class AuthorizationRequest:
    """A prepared sign-in: the URL to open, and what the code exchange needs back."""

    url: str
    state: str
    code_verifier: str
    redirect_uri: str

    def __repr__(self) -> str:
        return f"AuthorizationRequest(url={self.url!r})"


class OAuth2TokenClient:
    """Talks to one provider's token endpoint for one app registration (client_id).

    ``client_secret`` is empty for a public client (PKCE alone); ``verify`` is an
    ``ssl.SSLContext`` or CA bundle path for providers behind a private CA.
    """

    def __init__(self, endpoints: OAuthEndpoints, client_id: str, client_secret: str = "", *,
                 account: str = "", timeout_s: float = 30.0,
                 verify: ssl.SSLContext | str | bool = True,
                 clock: Callable[[], float] = time.time) -> None:
        self.endpoints = endpoints
        self.client_id = client_id
        self._client_secret = client_secret
        self.account = account
        self._timeout_s = timeout_s
        self._verify = verify
        self._clock = clock

    def authorization_request(self, redirect_uri: str) -> AuthorizationRequest:
        """The URL a person opens to sign in (PKCE S256, a fresh state)."""
        if not self.endpoints.authorize_url:
            raise OAuthError("invalid_request", "this flow has no sign-in URL", self.account)
        verifier = secrets.token_urlsafe(64)  # 86 chars: within RFC 7636's 43..128
        state = secrets.token_urlsafe(24)
        url = prepare_grant_uri(
            self.endpoints.authorize_url, self.client_id, "code", redirect_uri=redirect_uri,
            scope=" ".join(self.endpoints.scopes), state=state,
            code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
            **dict(self.endpoints.authorize_params))
        return AuthorizationRequest(str(url), state, verifier, redirect_uri)

    def exchange_code(self, request: AuthorizationRequest, code: str) -> TokenSet:
        """Trade the code from the redirect for tokens."""
        return self._post("authorization_code", {
            "code": code, "redirect_uri": request.redirect_uri,
            "code_verifier": request.code_verifier})

    def refresh(self, refresh_token: str) -> TokenSet:
        """A new access token (and maybe a rotated refresh token) from a refresh token."""
        tokens = self._post("refresh_token", {"refresh_token": refresh_token,
                                              "scope": " ".join(self.endpoints.scopes)})
        if tokens.refresh_token is None:  # not rotated: the old one stays valid
            tokens = TokenSet(tokens.access_token, tokens.expires_at, refresh_token,
                              tokens.scope)
        return tokens

    def client_credentials(self) -> TokenSet:
        """An app-only access token (Microsoft 365 client credentials)."""
        if not self._client_secret:
            raise OAuthError("invalid_client", "client_credentials needs the client secret "
                             "(NURTURE_OAUTH2__CLIENT_SECRET)", self.account)
        return self._post("client_credentials", {"scope": " ".join(self.endpoints.scopes)})

    def _post(self, grant: str, form: dict[str, str]) -> TokenSet:
        # client_secret_post: what Microsoft and Google both take; a public client sends
        # only its client_id (RFC 6749 2.3.1, RFC 8252 8.5).
        data = {"grant_type": grant, "client_id": self.client_id, **form}
        if self._client_secret:
            data["client_secret"] = self._client_secret
        started = self._clock()
        try:
            response = httpx.post(self.endpoints.token_url, data=data,
                                  headers={"Accept": "application/json"},
                                  timeout=self._timeout_s, verify=self._verify)
        except httpx.HTTPError as exc:
            log.warning("action=oauth_unreachable grant=%s error=%s", grant, type(exc).__name__)
            raise OAuthError("unreachable", f"token endpoint: {type(exc).__name__}: {exc}",
                             self.account) from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            raise OAuthError("invalid_response", f"token endpoint answered HTTP "
                             f"{response.status_code} without a JSON object", self.account)
        if "error" in answer or response.status_code >= 400:
            error = str(answer.get("error") or f"http_{response.status_code}")
            description = str(answer.get("error_description") or "")
            log.warning("action=oauth_refused grant=%s error=%s", grant, error)
            if grant == "refresh_token" and error == "invalid_grant":
                raise GrantRevokedError(error, description or "the refresh token was refused; "
                                        "sign in again", self.account)
            raise OAuthError(error, description, self.account)
        return self._tokens(grant, answer, started)

    def _tokens(self, grant: str, answer: dict[str, Any], started: float) -> TokenSet:
        access = answer.get("access_token")
        if not isinstance(access, str) or not access:
            raise OAuthError("invalid_response", "no access_token in the answer", self.account)
        expires_in = answer.get("expires_in")
        try:
            lifetime = float(expires_in) if expires_in is not None else DEFAULT_EXPIRES_IN_S
        except (TypeError, ValueError):
            lifetime = DEFAULT_EXPIRES_IN_S
        refresh = answer.get("refresh_token")
        log.info("action=oauth_token grant=%s expires_in_s=%.0f", grant, lifetime)
        # From the request's start: the lifetime began before the answer reached us.
        return TokenSet(access, started + lifetime,
                        refresh if isinstance(refresh, str) and refresh else None,
                        str(answer.get("scope") or ""))


def token_client(settings: OAuth2Settings, *, account: str, prefix: str = "oauth2",
                 timeout_s: float = 30.0) -> OAuth2TokenClient:
    """The client for a validated ``[oauth2]`` (or ``[mailboxes.NAME.oauth2]``) section."""
    ends = endpoints(settings.provider, settings.flow, tenant=settings.tenant,
                     authorize_url=settings.authorize_url, token_url=settings.token_url,
                     scopes=settings.scopes, prefix=prefix)
    return OAuth2TokenClient(ends, settings.client_id, settings.client_secret.reveal(),
                             account=account, timeout_s=timeout_s)


class TokenSource:
    """A live access token for one mailbox, thread-safe (SMTP and IMAP share it).

    With a ``refresh_token`` it uses the refresh grant, else client credentials. A rotated
    refresh token is handed to ``on_refresh_token`` so the caller can store it.
    """

    def __init__(self, client: OAuth2TokenClient, *, refresh_token: str | None = None,
                 skew_s: float = 120.0, clock: Callable[[], float] = time.time,
                 on_refresh_token: Callable[[str], None] | None = None) -> None:
        self._client = client
        self._refresh_token = refresh_token
        self._skew_s = skew_s
        self._clock = clock
        self._on_refresh_token = on_refresh_token
        self._current: TokenSet | None = None
        self._lock = threading.Lock()

    def access_token(self) -> str:
        """A token valid for at least ``skew_s`` more seconds (refreshing if needed)."""
        with self._lock:
            current = self._current
            if current is None or current.expires_at - self._skew_s <= self._clock():
                current = self._renew()
            return current.access_token

    def force_refresh(self) -> str:
        """A new token now: the server refused the one we had (revoked, clock skew)."""
        with self._lock:
            return self._renew().access_token

    @property
    def expires_at(self) -> float | None:
        """When the current access token expires (epoch seconds), if there is one."""
        return self._current.expires_at if self._current else None

    def _renew(self) -> TokenSet:
        if self._refresh_token:
            tokens = self._client.refresh(self._refresh_token)
            if tokens.refresh_token and tokens.refresh_token != self._refresh_token:
                self._refresh_token = tokens.refresh_token
                if self._on_refresh_token is not None:
                    self._on_refresh_token(tokens.refresh_token)
        elif self._client.endpoints.flow == "client_credentials":
            tokens = self._client.client_credentials()
        else:
            raise GrantRevokedError("login_required", "no refresh token stored; run "
                                    "`nurture mailbox login`", self._client.account)
        self._current = tokens
        return tokens
