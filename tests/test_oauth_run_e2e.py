"""An OAuth-only mailbox end to end with `nurture run` (a subprocess), no password anywhere:
mail goes out through an SMTP server that takes only AUTH XOAUTH2, replies are read from a
Dovecot that takes only XOAUTH2/OAUTHBEARER, across several 3 s token lifetimes and an IMAP
server restart after every token expired; then the grant is revoked: the mailbox stops, the
mail waits, `nurture status` and the operator log say so."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp_oauth import OAuthSmtpServer
from tests.test_inbox_e2e import reply, wait_until
from tests.test_mailbox_commands import oauth_env
from tests.test_processes import REPO, spawn
from tests.workspace import env_for, make_app, two_steps
from worker.app import App

pytestmark = pytest.mark.dovecot



def enrolment(app: App, address: str) -> tuple[str, int]:
    lead = app.db.lead_by_email(address)
    assert lead is not None
    row = app.db.enrollments_of(lead.id, "quick")[0]
    return row.status, row.next_step


def test_an_oauth_only_mailbox_sends_reads_survives_restarts_and_stops_when_revoked(
        tmp_path: Path, oauth_server: OAuthTestServer, oauth_smtp: OAuthSmtpServer,
        own_dovecot: OAuthDovecot) -> None:
    two_steps(tmp_path, "quick", second_wait="7s", subject="Your report")
    overrides = oauth_env(oauth_server, OUTBOUND__TRANSPORT="smtp", SMTP__HOST=oauth_smtp.host,
                          SMTP__PORT=str(oauth_smtp.port), SMTP__IDLE_S="1",
                          SMTP__CONNECTIONS="1", INBOUND__TRANSPORT="imap",
                          IMAP__HOST=own_dovecot.host, IMAP__PORT=str(own_dovecot.port),
                          IMAP__IDLE_RENEW_S="2", LOGGING__LEVEL="INFO")
    app = make_app(tmp_path, **overrides)
    _, refresh = oauth_server.issue()  # what `nurture mailbox login` stores (tested apart)
    app.oauth_tokens.store("default", oauth_server.user, refresh)
    env = env_for(tmp_path, **overrides)
    assert "PASSWORD" not in " ".join(env)
    for who in ("ann", "bob"):
        app.service.intake({"email": f"{who}@lead.test"}, campaign="quick")
    proc = spawn(env, tmp_path)
    log = tmp_path / "worker.log"
    try:
        # Step one goes out to both, signed in with XOAUTH2
        wait_until(lambda: len(oauth_smtp.messages) >= 2, 30, "first mails")
        first = {m.rcpt_tos[0]: m.message_id for m in oauth_smtp.messages}
        wait_until(lambda: b"action=imap_watch " in log.read_bytes(), 30, "watching")
        # Ann replies; the watcher reads it
        access, _ = oauth_server.issue()
        with own_dovecot.oauth_client(oauth_server.user, access) as client:
            client.append("INBOX", reply("ann@lead.test", first["ann@lead.test"] or "", "Yes!"))
        wait_until(lambda: enrolment(app, "ann@lead.test")[0] == "replied", 30, "ann replied")
        # Every token expires, the IMAP server restarts
        time.sleep(3.5)
        oauth_server.expire_all()
        own_dovecot.restart()
        # Bob's step two goes after the 7 s wait, over a new SMTP sign-in
        wait_until(lambda: sum("bob@lead.test" in m.rcpt_tos for m in oauth_smtp.messages) == 2,
                   40, "bob's second mail")
        second = [m.message_id for m in oauth_smtp.messages if "bob@lead.test" in m.rcpt_tos][-1]
        access, _ = oauth_server.issue()
        with own_dovecot.oauth_client(oauth_server.user, access) as client:
            client.append("INBOX", reply("bob@lead.test", second or "", "Call me."))
        # (his sequence is complete: the reply is read and matched, nothing left to stop)
        wait_until(lambda: len(re.findall(rb"class=human subclass=\S+ matched_by=in_reply_to",
                                          log.read_bytes())) == 2, 30, "bob's reply read")
        assert oauth_server.requests["token:refresh_token"] >= 3

        # The grant is revoked: new mail waits, the mailbox is shown signed out
        oauth_server.revoke_user(oauth_server.user)
        oauth_server.expire_all()
        app.service.intake({"email": "cy@lead.test"}, campaign="quick")
        wait_until(lambda: b"action=mailbox_signin_refused" in log.read_bytes(), 40,
                   "signed out alert")
        time.sleep(1.0)
        assert not any("cy@lead.test" in m.rcpt_tos for m in oauth_smtp.messages)
        assert enrolment(app, "cy@lead.test") == ("active", 0)  # waiting, not failed
        shown = subprocess.run([sys.executable, "-m", "worker", "status", "--json"],
                               cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                               capture_output=True, text=True, timeout=60)
        [box] = json.loads(shown.stdout)["mailboxes"]
        assert box["state"].startswith("signed out: invalid_grant")
        assert "nurture mailbox login default" in box["state"]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
    text = log.read_text()
    assert refresh not in text and refresh not in shown.stdout
