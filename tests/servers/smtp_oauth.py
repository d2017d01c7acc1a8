"""An SMTP server (aiosmtpd) that accepts only ``AUTH XOAUTH2``, checking tokens by introspection.

It is ``ScriptedSmtpServer`` (same recording and fault scripts) with PLAIN and LOGIN
removed and an ``auth_XOAUTH2`` handler method: the bearer token of each AUTH is sent to the
test authorization server's RFC 7662 ``/introspect``; it must be active and belong to the
``user=`` of the SASL string. A refused token gets Google's answer: a 334 challenge carrying
a base64 JSON error, then ``535 5.7.8`` once the client sends its empty line.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import httpx
from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from tests.servers.smtp import ScriptedSmtpServer, _Handler

REFUSED = "535 5.7.8 Username and Password not accepted"


class _OAuthHandler(_Handler):
    owner: OAuthSmtpServer

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        """SASL XOAUTH2: ``user=U^Aauth=Bearer T^A^A``, initial response or after a 334."""
        if len(args) > 1:
            try:
                blob = base64.b64decode(args[1], validate=True)
            except binascii.Error:
                return AuthResult(success=False, handled=False, message="501 5.5.2 Can't decode base64")
        else:
            answer = await server.challenge_auth("")
            if answer is MISSING:
                return AuthResult(success=False, handled=True)
            blob = answer  # type: ignore[assignment]
        user, token = _parse_xoauth2(blob.decode("utf-8", "replace"))
        if user and token and await self.owner._token_belongs_to(token, user):
            self.owner.logins.append(user)
            return AuthResult(success=True, auth_data=user)
        error = json.dumps({"status": "401", "schemes": "bearer", "scope": "mail"})
        # The client answers the error challenge with an empty line before the 535.
        if await server.challenge_auth(error) is MISSING:
            return AuthResult(success=False, handled=True)
        self.owner.refused += 1
        return AuthResult(success=False, handled=False, message=REFUSED)


def _parse_xoauth2(text: str) -> tuple[str, str]:
    fields = dict(part.split("=", 1) for part in text.split("\x01") if "=" in part)
    auth = fields.get("auth", "")
    token = auth[7:] if auth.lower().startswith("bearer ") else ""
    return fields.get("user", ""), token


class OAuthSmtpServer(ScriptedSmtpServer):
    """SMTP on 127.0.0.1 that requires AUTH XOAUTH2 before MAIL FROM.

    ``introspection_url`` is the test authorization server's ``/introspect``. ``logins``
    lists the users that authenticated, ``refused`` counts refused tokens.
    """

    def __init__(self, introspection_url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.introspection_url = introspection_url
        self.logins: list[str] = []
        self.refused = 0

    def _auth_kwargs(self) -> dict[str, Any]:
        # auth_require_tls only with STARTTLS: the plain-text tests run on loopback.
        return {"auth_required": True, "auth_require_tls": self.starttls,
                "auth_exclude_mechanism": ["PLAIN", "LOGIN"]}

    def _make_handler(self) -> _Handler:
        return _OAuthHandler(self)

    async def _token_belongs_to(self, token: str, user: str) -> bool:
        async with httpx.AsyncClient(timeout=5.0) as client:
            response = await client.post(self.introspection_url, data={"token": token})
        if response.status_code != 200:
            return False
        info = response.json()
        return info.get("active") is True and str(info.get("username", "")).lower() == user.lower()
