"""`nurture mailbox login|list|resume|test`: sign a mailbox in with OAuth 2.0, show each
mailbox's state, let a paused mailbox send again, and check a mailbox as the worker would.

Tokens never reach the terminal: `login` prints the account it connected, `list` whether a
sign-in is stored. `test` lives in ``worker.commands.mailbox_test``.
"""

from __future__ import annotations

import argparse
import json
import sys
import webbrowser
from collections.abc import Callable
from datetime import datetime
from typing import Any

from worker.adapters.oauth2 import AuthorizationRequest, token_client
from worker.adapters.oauth_loopback import sign_in
from worker.adapters.oauth_sources import oauth_accounts
from worker.app import App
from worker.config import Settings
from worker.errors import OAuthError, UserError
from worker.mailer import DEFAULT_MAILBOX, Mailboxes


def mailbox_name(settings: Settings, given: str | None) -> str:
    """The mailbox a command names (default: the default one); UserError if unknown."""
    name = given or DEFAULT_MAILBOX
    if name not in Mailboxes(settings).names():
        raise UserError(f"no mailbox named {name!r} (configured: "
                        f"{', '.join(Mailboxes(settings).names())})")
    return name


def login(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """The authorization-code flow with PKCE and a loopback redirect; stores the refresh
    token (sealed). Exit 0 "connected NAME as ACCOUNT", 1 with the provider's error."""
    s = settings()
    name = mailbox_name(s, args.name)
    accounts = oauth_accounts(s)
    if name not in accounts:
        raise UserError(f"mailbox {name} does not sign in with OAuth 2.0 (set smtp.auth / "
                        "imap.auth = \"oauth2\")")
    registration, prefix, username = accounts[name]
    app = App(s)
    app.db.check_schema()
    client = token_client(registration, account=name, prefix=prefix)
    if registration.flow == "client_credentials":
        try:
            client.client_credentials()
        except OAuthError as exc:
            print(f"nurture: {name}: the provider refused the app's credentials: {exc.error}"
                  f"{': ' + exc.description if exc.description else ''}", file=sys.stderr)
            return 1
        app.oauth_tokens.store(name, username, None)
        print(f"connected {name} as {username} (client credentials: no sign-in needed)")
        return 0

    def show(request: AuthorizationRequest) -> None:
        print(f"Sign in as {username} at:\n\n  {request.url}\n\nWaiting for the redirect to "
              f"{request.redirect_uri} (up to {args.timeout_s:g} s)...", flush=True)
        if not args.no_browser:
            webbrowser.open(request.url)

    try:
        tokens = sign_in(client, timeout_s=args.timeout_s, show_url=show)
    except OAuthError as exc:
        print(f"nurture: {name}: sign-in failed: {exc.error}"
              f"{': ' + exc.description if exc.description else ''}", file=sys.stderr)
        return 1
    if not tokens.refresh_token:
        print(f"nurture: {name}: the provider gave no refresh token; add the offline_access "
              "scope (Microsoft) or access_type=offline (Google)", file=sys.stderr)
        return 1
    app.oauth_tokens.store(name, username, tokens.refresh_token)
    print(f"connected {name} as {username}")
    return 0


def mailbox_states(app: App) -> dict[str, str]:
    """Why a mailbox is stopped ("paused: ...", "signed out: ..."), by name."""
    return app.oauth_tokens.stopped()


def _when(at: datetime | None) -> str | None:
    return at.isoformat(timespec="seconds") if at else None


def collect_list(app: App) -> list[dict[str, Any]]:
    """Each mailbox as plain data (what ``list --json`` prints)."""
    s = app.settings
    boxes = Mailboxes(s)
    sign_ins = app.oauth_tokens.sign_ins()
    sends = app.oauth_tokens.last_sends()
    reads = {st.mailbox: st.last_success_at for st in app.db.mailbox_states()}
    states = mailbox_states(app)
    rows = []
    for name in boxes.names():
        smtp = boxes.smtp(name)
        imap = s.imap if name == DEFAULT_MAILBOX else s.mailboxes[name].imap
        address = smtp.address or (s.smtp.address if name == DEFAULT_MAILBOX else "")
        signed = sign_ins.get(name)
        rows.append({
            "name": name, "address": address or smtp.username,
            "auth": {"smtp": smtp.auth, "imap": imap.auth},
            "caps": {"hourly": smtp.hourly_cap, "daily": smtp.daily_cap},
            "account": signed.account if signed else None,
            "last_send": _when(sends.get(name)), "last_inbox_read": _when(reads.get(name)),
            "state": states.get(name, "sending"),
        })
    return rows


def list_mailboxes(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """`nurture mailbox list`."""
    app = App(settings())
    app.db.check_schema()
    rows = collect_list(app)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        caps = row["caps"]
        print(f"{row['name']}  {row['address'] or '-'}")
        print(f"  auth        smtp {row['auth']['smtp']}, imap {row['auth']['imap']}"
              + (f"; connected as {row['account']}" if row["account"] else ""))
        print(f"  caps        {caps['hourly'] or 'no'} per hour, {caps['daily'] or 'no'} per day")
        print(f"  last send   {row['last_send'] or 'never'}")
        print(f"  last read   {row['last_inbox_read'] or 'never'}")
        print(f"  state       {row['state']}")
    return 0


def resume(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """`nurture mailbox resume NAME`: a mailbox paused by the bounce guard sends again."""
    s = settings()
    name = mailbox_name(s, args.name)
    app = App(s)
    app.db.check_schema()
    if app.oauth_tokens.resume(name):
        print(f"resumed {name}: its waiting mail goes out again")
    else:
        print(f"{name} was not paused")
    return 0
