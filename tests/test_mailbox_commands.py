"""`nurture mailbox login|list|resume` as subprocesses: the sign-in driven without a browser
(the test follows the printed URL with an HTTP client to the test authorization server, which
redirects to the loopback listener), the stored token sealed, a refused sign-in, the list."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx

from tests.servers.oauth_as import OAuthTestServer
from tests.workspace import env_for, make_app

REPO = Path(__file__).resolve().parents[1]


def oauth_env(server: OAuthTestServer, **more: str) -> dict[str, str]:
    """SECTION__KEY overrides of a default mailbox that signs in with OAuth 2.0 only."""
    return {"SMTP__AUTH": "oauth2", "SMTP__USERNAME": server.user,
            "SMTP__ADDRESS": server.user, "IMAP__AUTH": "oauth2", "IMAP__USERNAME": server.user,
            "OAUTH2__PROVIDER": "custom", "OAUTH2__CLIENT_ID": server.client_id,
            "OAUTH2__AUTHORIZE_URL": server.authorize_url, "OAUTH2__TOKEN_URL": server.token_url,
            "OAUTH2__SCOPES": "mail offline_access", **more}


def nurture(tmp: Path, env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    environ = {**os.environ, **env, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "worker", *args], cwd=tmp, env=environ,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def login(tmp: Path, env: dict[str, str]) -> tuple[int, str, str]:
    """Run `mailbox login --no-browser`, follow the URL it prints like a browser would."""
    proc = nurture(tmp, env, "mailbox", "login", "--no-browser", "--timeout-s", "20")
    assert proc.stdout is not None
    printed = ""
    for line in proc.stdout:
        printed += line
        found = re.search(r"https?://\S+/authorize\S*", line)
        if found:
            httpx.get(found.group(0), follow_redirects=True, timeout=10)
            break
    out, err = proc.communicate(timeout=30)
    return proc.returncode, printed + out, err


def test_login_without_a_browser_stores_a_sealed_token(tmp_path: Path,
                                                       oauth_server: OAuthTestServer) -> None:
    overrides = oauth_env(oauth_server)
    app = make_app(tmp_path, **overrides)
    code, out, err = login(tmp_path, env_for(tmp_path, **overrides))
    assert code == 0, err
    assert "connected default as rep@example.test" in out
    refresh = app.oauth_tokens.refresh_token("default")
    assert refresh
    app.db.checkpoint()
    raw = b"".join(p.read_bytes() for p in (tmp_path / "var").glob("nurture.db*"))
    assert refresh.encode() not in raw
    assert refresh not in out + err

    listed = nurture(tmp_path, env_for(tmp_path, **overrides), "mailbox", "list")
    shown, _ = listed.communicate(timeout=30)
    assert listed.returncode == 0
    assert "connected as rep@example.test" in shown and "state       sending" in shown
    assert refresh not in shown


def test_a_refused_sign_in_exits_1_with_the_providers_error(
        tmp_path: Path, oauth_server: OAuthTestServer) -> None:
    overrides = oauth_env(oauth_server)
    app = make_app(tmp_path, **overrides)
    oauth_server.deny_next_authorize()
    code, out, err = login(tmp_path, env_for(tmp_path, **overrides))
    assert code == 1
    assert "access_denied" in err and "connected" not in out
    assert app.oauth_tokens.refresh_token("default") is None


def test_resume_lets_a_paused_mailbox_go(tmp_path: Path) -> None:
    app = make_app(tmp_path)
    app.oauth_tokens.pause("default", "bounce rate 7.5% over 200 sends")
    env = env_for(tmp_path)
    listed = nurture(tmp_path, env, "mailbox", "list")
    assert "paused: bounce rate 7.5% over 200 sends" in listed.communicate(timeout=30)[0]
    resumed = nurture(tmp_path, env, "mailbox", "resume", "default")
    assert "resumed default" in resumed.communicate(timeout=30)[0]
    assert app.oauth_tokens.pauses() == {}
