"""The IMAP watcher signs in with OAuth 2.0 against Dovecot's oauth2 passdb (XOAUTH2 and
OAUTHBEARER only, tokens checked by the test authorization server): replies are read across
several 3 s token lifetimes and a server restart after every token expired; a revoked grant
stops the watching and is reported."""

from __future__ import annotations

import time

import pytest

from tests.imapkit import message, running, wait_until
from tests.inbound_fakes import MemoryCheckpoints, RecordingSink
from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from worker.adapters.imap import ImapMailbox
from worker.adapters.imap_session import ImapSession
from worker.adapters.oauth2 import OAuth2TokenClient, TokenSource
from worker.config import ImapSettings
from worker.domain.oauth_providers import endpoints
from worker.errors import GrantRevokedError

pytestmark = pytest.mark.dovecot



def _source(server: OAuthTestServer, refresh: str) -> TokenSource:
    ends = endpoints("custom", authorize_url=server.authorize_url, token_url=server.token_url,
                     scopes=("mail", "offline_access"))
    client = OAuth2TokenClient(ends, server.client_id, account="default", timeout_s=5)
    return TokenSource(client, refresh_token=refresh, skew_s=0.5)


def _append(dovecot: OAuthDovecot, server: OAuthTestServer, n: int) -> None:
    access, _ = server.issue()
    with dovecot.oauth_client(server.user, access) as client:
        client.append("INBOX", message(n))


def _watcher(dovecot: OAuthDovecot, server: OAuthTestServer, sink: RecordingSink,
             source: TokenSource, revoked: list[str]) -> ImapMailbox:
    settings = ImapSettings(host=dovecot.host, port=dovecot.port, username=server.user,
                            auth="oauth2", timeout_s=5.0, read_existing=True,
                            idle_renew_s=2.0)
    return ImapMailbox("default", settings, sink, MemoryCheckpoints(), "w1", tokens=source,
                       backoff=lambda attempt: 0.2,
                       on_revoked=lambda name, exc: revoked.append(name))


def test_replies_are_read_across_token_lifetimes_and_a_restart(
        own_dovecot: OAuthDovecot, oauth_server: OAuthTestServer) -> None:
    _, refresh = oauth_server.issue()
    sink, revoked = RecordingSink(), []
    watcher = _watcher(own_dovecot, oauth_server, sink, _source(oauth_server, refresh), revoked)
    _append(own_dovecot, oauth_server, 1)
    with running(watcher):
        wait_until(lambda: len(sink.records) == 1, 10, "first reply read")
        time.sleep(3.5)  # every access token has expired now
        oauth_server.expire_all()
        own_dovecot.restart()
        _append(own_dovecot, oauth_server, 2)
        wait_until(lambda: len(sink.records) == 2, 20, "reply after the restart read")
        wait_until(lambda: watcher.is_watching, 10, "watching again")
        time.sleep(3.5)
        _append(own_dovecot, oauth_server, 3)
        wait_until(lambda: len(sink.records) == 3, 20, "reply in a later token lifetime")
    assert revoked == []
    assert oauth_server.requests["token:refresh_token"] >= 2


def test_a_revoked_grant_stops_watching_and_is_reported(
        own_dovecot: OAuthDovecot, oauth_server: OAuthTestServer) -> None:
    _, refresh = oauth_server.issue()
    sink, revoked = RecordingSink(), []
    watcher = _watcher(own_dovecot, oauth_server, sink, _source(oauth_server, refresh), revoked)
    with running(watcher):
        oauth_server.revoke_user(oauth_server.user)
        own_dovecot.restart()  # the watcher must sign in again
        wait_until(lambda: revoked == ["default"], 20, "revocation reported")
        assert not watcher.is_watching


def test_the_session_raises_grant_revoked_untranslated(
        own_dovecot: OAuthDovecot, oauth_server: OAuthTestServer) -> None:
    _, refresh = oauth_server.issue()
    oauth_server.revoke_user(oauth_server.user)
    settings = ImapSettings(host=own_dovecot.host, port=own_dovecot.port,
                            username=oauth_server.user, auth="oauth2")
    with pytest.raises(GrantRevokedError):
        ImapSession.open(settings, readonly=True, timeout_s=5,
                         tokens=_source(oauth_server, refresh))
