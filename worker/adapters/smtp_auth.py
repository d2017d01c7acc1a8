"""Opening one SMTP connection: TCP, TLS (verified, private CA, certificate name) and sign-in.

Sign-in is a password (``smtp.auth = "password"``) or an OAuth 2.0 bearer token
(``"oauth2"``): XOAUTH2, which Microsoft and Google take, or OAUTHBEARER (RFC 7628) where the
server offers only that. A refused token is refreshed once (``force_refresh``) and tried
again: a server may refuse a token its provider still thinks valid (revoked, clock skew).
A refresh the provider refuses (``GrantRevokedError``) defers the mail (throttled, so the
mailbox pauses) and is reported through ``on_revoked``: mail waits, nothing is dropped.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import ssl
from collections.abc import Callable

import aiosmtplib

from worker.adapters import tls
from worker.adapters.oauth2 import TokenSource
from worker.config import SmtpSettings
from worker.domain import policy, sasl
from worker.errors import (
    GrantRevokedError,
    OAuthError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger(__name__)

OnRevoked = Callable[[str, GrantRevokedError], None]


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    """The verifying context for this account (None without TLS)."""
    if settings.tls == "none":
        return None
    return tls.client_context(settings.ca_file, key="smtp.ca_file")


async def open_client(name: str, settings: SmtpSettings, tokens: TokenSource | None = None,
                      on_revoked: OnRevoked | None = None) -> aiosmtplib.SMTP:
    """A connected, TLS-upgraded and signed-in client. Raises Transient/PermanentDeliveryError."""
    s = settings
    server_name = tls.server_name(s.host, s.tls_server_name)
    sock: socket.socket | None = None
    try:
        if server_name != s.host:
            # The certificate is checked against tls_server_name, the TCP connection goes to
            # host: aiosmtplib takes an open socket and uses its ``hostname`` for SNI only.
            sock = await asyncio.to_thread(socket.create_connection, (s.host, s.port),
                                           s.timeout_s)
            sock.setblocking(False)
        client = aiosmtplib.SMTP(
            hostname=server_name, port=None if sock else s.port, sock=sock,
            timeout=s.timeout_s, use_tls=s.tls == "tls", start_tls=s.tls == "starttls",
            tls_context=tls_context(s))
        await client.connect()
        if s.auth == "oauth2":
            await _oauth_login(client, name, s, tokens, on_revoked)
        elif s.username:
            await client.login(s.username, s.password.reveal())
        if client.is_ehlo_or_helo_needed:
            await client.ehlo()  # now: what the server offers (PIPELINING) decides the path
    except aiosmtplib.SMTPAuthenticationError as exc:
        raise PermanentDeliveryError(exc.code, f"authentication failed for {s.username}: "
                                     f"{exc.message}") from None
    except (aiosmtplib.SMTPException, OSError) as exc:
        if sock is not None:
            sock.close()
        raise translate(exc) from None
    return client


async def _oauth_login(client: aiosmtplib.SMTP, name: str, s: SmtpSettings,
                       tokens: TokenSource | None, on_revoked: OnRevoked | None) -> None:
    if tokens is None:
        raise TransientDeliveryError(None, f"mailbox {name}: auth = oauth2 but no sign-in "
                                     f"stored; run `nurture mailbox login {name}`",
                                     throttled=True)
    try:
        token = await asyncio.to_thread(tokens.access_token)
        try:
            await authenticate(client, s.username, token)
        except aiosmtplib.SMTPAuthenticationError as exc:
            log.info("action=smtp_token_refused mailbox=%s code=%s", name, exc.code)
            token = await asyncio.to_thread(tokens.force_refresh)
            await authenticate(client, s.username, token)
    except GrantRevokedError as exc:
        if on_revoked is not None:
            on_revoked(name, exc)
        raise TransientDeliveryError(None, f"mailbox {name}: the OAuth 2.0 grant was refused "
                                     f"({exc.error}); run `nurture mailbox login {name}`",
                                     throttled=True) from None
    except aiosmtplib.SMTPAuthenticationError as exc:
        # Refused twice with a fresh token: a setup problem (scope, SMTP AUTH disabled for the
        # mailbox), not this mail's. The mail waits.
        raise TransientDeliveryError(exc.code, f"authentication failed for {s.username}: "
                                     f"{exc.message}", throttled=True) from None
    except OAuthError as exc:
        raise TransientDeliveryError(None, f"mailbox {name}: token endpoint: {exc.error} "
                                     f"{exc.description}", throttled=True) from None


async def authenticate(client: aiosmtplib.SMTP, user: str, token: str) -> None:
    """XOAUTH2, or OAUTHBEARER when the server offers only that. SMTPAuthenticationError
    when refused."""
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    offered = client.supported_auth_methods
    if "xoauth2" in offered or "oauthbearer" not in offered:
        await client.auth_xoauth2(user, token)
        return
    hostname = client.hostname or ""
    initial = sasl.encode(sasl.oauthbearer(user, token, host=hostname, port=client.port or 0))
    response = await client.execute_command(b"AUTH", b"OAUTHBEARER", initial.encode())
    if response.code == 334:  # the error challenge: RFC 7628 3.2.3 asks for a %x01
        response = await client.execute_command(base64.b64encode(b"\x01"))
    if response.code != 235:
        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)


def by_code(code: int, text: str) -> TransientDeliveryError | PermanentDeliveryError:
    """An SMTP answer as the error class the worker acts on."""
    if 400 <= code < 500:
        return TransientDeliveryError(code, text, throttled=policy.is_throttle(code, text))
    return PermanentDeliveryError(code, text)


def translate(exc: BaseException) -> TransientDeliveryError | PermanentDeliveryError:
    """A library or socket error as the error class the worker acts on."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return by_code(exc.code, exc.message)
    if isinstance(exc, aiosmtplib.SMTPTimeoutError):
        return TransientDeliveryError(None, f"timeout: {exc}")
    if isinstance(exc, TimeoutError):
        return TransientDeliveryError(None, "timeout: no answer from the server in time")
    return TransientDeliveryError(None, f"connection: {exc.__class__.__name__}: {exc}")
