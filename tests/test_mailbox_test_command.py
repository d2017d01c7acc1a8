"""`nurture mailbox test` (a subprocess) against real servers: an OAuth-only mailbox passing
every check (SMTP that takes only XOAUTH2, Dovecot's oauth2 passdb), and each failure with the
server's words and a hint: bad host, bad TLS name, refused token, missing folder."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.servers.dovecot import Dovecot
from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.smtp_oauth import OAuthSmtpServer
from tests.test_mailbox_commands import oauth_env
from tests.workspace import REPO, env_for, make_app


def mailbox_test(tmp: Path, **overrides: str) -> tuple[int, dict[str, Any], str]:
    env = {**env_for(tmp, **overrides), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-m", "worker", "mailbox", "test", "--json"],
                          cwd=tmp, env=env, capture_output=True, text=True, timeout=90)
    return done.returncode, json.loads(done.stdout or "{}"), done.stderr


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in report["checks"] if c["name"] == name]
    return found


@pytest.mark.dovecot
def test_an_oauth_only_mailbox_passes_then_a_refused_grant_says_to_log_in(
        tmp_path: Path, oauth_server: OAuthTestServer, oauth_smtp: OAuthSmtpServer,
        own_dovecot: OAuthDovecot) -> None:
    overrides = oauth_env(oauth_server, SMTP__HOST=oauth_smtp.host,
                          SMTP__PORT=str(oauth_smtp.port), IMAP__HOST=own_dovecot.host,
                          IMAP__PORT=str(own_dovecot.port))
    app = make_app(tmp_path, **overrides)
    _, refresh = oauth_server.issue()
    app.oauth_tokens.store("default", oauth_server.user, refresh)
    code, report, err = mailbox_test(tmp_path, **overrides)
    assert code == 0, (report, err)
    assert [c["name"] for c in report["checks"]] == [
        "smtp connect", "smtp tls", "smtp auth", "imap connect", "imap login", "imap folder",
        "imap idle", "imap uidvalidity"]
    assert check(report, "smtp connect")["detail"].split(": ", 1)[1].startswith("220 ")
    assert check(report, "imap idle")["detail"] == "IDLE offered"
    assert int(check(report, "imap uidvalidity")["detail"]) > 0
    assert oauth_smtp.messages == []  # nothing sent

    oauth_server.revoke_user(oauth_server.user)
    code, report, _ = mailbox_test(tmp_path, **overrides)
    assert code == 1 and not report["ok"]
    auth = check(report, "smtp auth")
    assert "invalid_grant" in auth["detail"]
    assert auth["hint"] == "run `nurture mailbox login default`"
    assert refresh not in json.dumps(report)


def test_a_bad_host_fails_the_connect_with_a_hint(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    make_app(tmp_path)
    code, report, _ = mailbox_test(tmp_path, SMTP__HOST="127.0.0.1", SMTP__PORT=str(port))
    assert code == 1
    connect = check(report, "smtp connect")
    assert not connect["ok"] and "Errno 111" in connect["detail"]
    assert "smtp.host" in connect["hint"]


def test_a_bad_tls_name_fails_with_the_certificate_hint(tmp_path: Path) -> None:
    with ScriptedSmtpServer(starttls=True).start() as server:
        make_app(tmp_path)
        code, report, _ = mailbox_test(
            tmp_path, SMTP__HOST="127.0.0.1", SMTP__PORT=str(server.port), SMTP__TLS="starttls",
            SMTP__CA_FILE=str(server.cafile), SMTP__TLS_SERVER_NAME="mail.other.example")
    assert code == 1
    tls = check(report, "smtp tls")
    assert not tls["ok"] and "certificate" in tls["detail"].lower()
    assert "smtp.tls_server_name" in tls["hint"]


@pytest.mark.dovecot
def test_a_missing_folder_fails_naming_the_folders(tmp_path: Path, dovecot: Dovecot,
                                                   smtp_server: ScriptedSmtpServer) -> None:
    account = dovecot.add_user()
    make_app(tmp_path)
    code, report, _ = mailbox_test(
        tmp_path, SMTP__HOST=smtp_server.host, SMTP__PORT=str(smtp_server.port),
        IMAP__HOST=account.host, IMAP__PORT=str(account.port), IMAP__USERNAME=account.username,
        IMAP__PASSWORD=account.password, IMAP__FOLDER="Replies")
    assert code == 1
    assert check(report, "imap login")["ok"]
    folder = check(report, "imap folder")
    assert not folder["ok"] and "'Replies' does not exist" in folder["detail"]
    assert "INBOX" in folder["hint"]
