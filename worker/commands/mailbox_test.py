"""`nurture mailbox test [NAME] [--json]`: connect as the worker would and report each check
with the server's own words: SMTP connect, TLS, authentication (nothing is sent), IMAP login,
the watched folder exists, IDLE offered, UIDVALIDITY. Exit 1 if any check fails, with a hint.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import ssl
from collections.abc import Callable
from dataclasses import asdict, dataclass

import aiosmtplib
from imapclient import IMAPClient

from worker.adapters import tls
from worker.adapters.imap_session import oauth_login
from worker.adapters.oauth2 import TokenSource
from worker.adapters.smtp_auth import authenticate, tls_context
from worker.app import App
from worker.commands.mailbox import mailbox_name
from worker.config import ImapSettings, Settings, SmtpSettings
from worker.errors import GrantRevokedError, OAuthError
from worker.mailer import DEFAULT_MAILBOX


@dataclass
class Check:
    """One line of the report."""

    name: str
    ok: bool
    detail: str
    hint: str = ""


def _words(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    if isinstance(exc, OAuthError):
        return f"token endpoint: {exc.error} {exc.description}".strip()
    return f"{type(exc).__name__}: {exc}"


def _tls_hint(prefix: str, exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE" in str(exc):
        return (f"the certificate was refused: set {prefix}.tls_server_name to the name on it, "
                f"or {prefix}.ca_file to your private CA")
    return f"check {prefix}.host, {prefix}.port and {prefix}.tls"


async def _smtp(name: str, s: SmtpSettings, tokens: TokenSource | None) -> list[Check]:
    checks: list[Check] = []
    server = tls.server_name(s.host, s.tls_server_name)
    client = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout_s,
                             use_tls=s.tls == "tls", start_tls=False, tls_context=tls_context(s))
    try:
        if server != s.host:
            # Connect to host, verify tls_server_name (as the worker does).
            client = aiosmtplib.SMTP(hostname=server, sock=await _sock(s), timeout=s.timeout_s,
                                     use_tls=s.tls == "tls", start_tls=False,
                                     tls_context=tls_context(s))
        greeting = await client.connect()
    except (aiosmtplib.SMTPException, OSError) as exc:
        return [Check("smtp connect", False, f"{s.host}:{s.port}: {_words(exc)}",
                      _tls_hint("smtp", exc))]
    checks.append(Check("smtp connect", True, f"{s.host}:{s.port}: {greeting.code} "
                                              f"{greeting.message}"))
    try:
        if s.tls == "starttls":
            answer = await client.starttls(server_hostname=server)
            checks.append(Check("smtp tls", True, f"STARTTLS {answer.code} {answer.message}"))
        elif s.tls == "tls":
            checks.append(Check("smtp tls", True, "implicit TLS, certificate verified"))
        else:
            checks.append(Check("smtp tls", True, "no TLS (smtp.tls = \"none\")"))
    except (aiosmtplib.SMTPException, OSError) as exc:
        checks.append(Check("smtp tls", False, _words(exc), _tls_hint("smtp", exc)))
        client.close()
        return checks
    checks.append(await _smtp_auth(name, client, s, tokens))
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError):
        client.close()
    return checks


async def _sock(s: SmtpSettings) -> socket.socket:
    sock = await asyncio.to_thread(socket.create_connection, (s.host, s.port), s.timeout_s)
    sock.setblocking(False)
    return sock


async def _smtp_auth(name: str, client: aiosmtplib.SMTP, s: SmtpSettings,
                     tokens: TokenSource | None) -> Check:
    login_hint = f"run `nurture mailbox login {name}`"
    try:
        if s.auth == "oauth2":
            if tokens is None:
                return Check("smtp auth", False, "no OAuth 2.0 configuration", login_hint)
            try:
                await authenticate(client, s.username, await asyncio.to_thread(tokens.access_token))
            except aiosmtplib.SMTPAuthenticationError:
                await authenticate(client, s.username, await asyncio.to_thread(tokens.force_refresh))
            return Check("smtp auth", True, f"XOAUTH2 as {s.username}: accepted")
        if not s.username:
            return Check("smtp auth", True, "no authentication configured")
        answer = await client.login(s.username, s.password.reveal())
        return Check("smtp auth", True, f"{answer.code} {answer.message}")
    except GrantRevokedError as exc:
        return Check("smtp auth", False, _words(exc), login_hint)
    except (aiosmtplib.SMTPException, OAuthError, OSError) as exc:
        hint = login_hint if s.auth == "oauth2" else "check smtp.username and the password"
        return Check("smtp auth", False, _words(exc), hint)


def _imap(name: str, s: ImapSettings, tokens: TokenSource | None) -> list[Check]:
    if not s.username:
        return []
    context = (tls.client_context(s.ca_file, key="imap.ca_file", server_name=s.tls_server_name)
               if s.tls != "none" else None)
    try:
        client = IMAPClient(s.host, s.port, ssl=s.tls == "tls", ssl_context=context,
                            timeout=s.timeout_s)
        if s.tls == "starttls":
            client.starttls(context)
    except Exception as exc:  # noqa: BLE001 - every failure is reported with its words
        return [Check("imap connect", False, f"{s.host}:{s.port}: {_words(exc)}",
                      _tls_hint("imap", exc))]
    checks = [Check("imap connect", True, f"{s.host}:{s.port}: "
                    f"{client.welcome.decode(errors='replace')[:200]}")]
    try:
        try:
            if s.auth == "oauth2":
                oauth_login(client, s.username, tokens)
            else:
                client.login(s.username, s.password.reveal())
        except Exception as exc:  # noqa: BLE001
            hint = (f"run `nurture mailbox login {name}`" if s.auth == "oauth2"
                    else "check imap.username and the password")
            return [*checks, Check("imap login", False, _words(exc), hint)]
        checks.append(Check("imap login", True, f"{s.auth} as {s.username}: OK"))
        if not client.folder_exists(s.folder):
            folders = ", ".join(f[2] for f in client.list_folders())[:300]
            return [*checks, Check("imap folder", False, f"{s.folder!r} does not exist",
                                   f"set imap.folder to one of: {folders}")]
        checks.append(Check("imap folder", True, f"{s.folder!r} exists"))
        caps = client.capabilities()
        checks.append(Check("imap idle", True, "IDLE offered" if b"IDLE" in caps else
                            "IDLE not offered: the worker polls every imap.poll_interval_s"))
        info = client.select_folder(s.folder, readonly=True)
        checks.append(Check("imap uidvalidity", True, str(int(info[b"UIDVALIDITY"]))))
    except Exception as exc:  # noqa: BLE001
        checks.append(Check("imap", False, _words(exc), "check imap.folder"))
    finally:
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - best effort on the way out
            client.shutdown()
    return checks


def run_checks(app: App, name: str) -> list[Check]:
    """Every check of mailbox ``name``, in order."""
    s = app.settings
    smtp = s.smtp if name == DEFAULT_MAILBOX else s.mailboxes[name].smtp
    imap = s.imap if name == DEFAULT_MAILBOX else s.mailboxes[name].imap
    tokens = app.token_sources.get(name)
    return asyncio.run(_smtp(name, smtp, tokens)) + _imap(name, imap, tokens)


def test(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """`nurture mailbox test`: exit 0 when every check passes, 1 otherwise."""
    s = settings()
    name = mailbox_name(s, args.name)
    app = App(s)
    if app.token_sources.get(name) is not None:
        app.db.check_schema()  # the stored sign-in is read from the database
    checks = run_checks(app, name)
    failed = [c for c in checks if not c.ok]
    if args.json:
        print(json.dumps({"mailbox": name, "ok": not failed,
                          "checks": [asdict(c) for c in checks]}, indent=2))
    else:
        for c in checks:
            print(f"{'ok  ' if c.ok else 'FAIL'}  {c.name:<17} {c.detail}")
            if c.hint:
                print(f"      {'':<17} hint: {c.hint}")
        print(f"{name}: " + ("all checks passed" if not failed else f"{len(failed)} failed"))
    return 1 if failed else 0
