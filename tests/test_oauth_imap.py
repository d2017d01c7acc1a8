"""Nurture's SASL strings and token source against Dovecot's oauth2 passdb: sign in once, log
in with XOAUTH2 and OAUTHBEARER, survive a server restart after every token expired, and
stop with GrantRevokedError when the grant is revoked."""

from __future__ import annotations

import imaplib
import threading

import httpx
import pytest

from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from worker.adapters.oauth2 import AuthorizationRequest, OAuth2TokenClient, TokenSource
from worker.adapters.oauth_loopback import sign_in
from worker.domain import sasl
from worker.domain.oauth_providers import endpoints
from worker.errors import GrantRevokedError

pytestmark = pytest.mark.dovecot



def _login(server: OAuthDovecot, user: str, token: str, mech: str = "XOAUTH2") -> bool:
    """AUTHENTICATE with Nurture's own SASL string (imaplib: no library builds it for us)."""
    imap = imaplib.IMAP4(server.host, server.port, timeout=10)
    answered: list[bytes] = []

    def respond(challenge: bytes) -> bytes:
        if answered:  # the server's error challenge: RFC 7628 asks for a %x01 (XOAUTH2: empty)
            return b"\x01" if mech == "OAUTHBEARER" else b""
        answered.append(challenge)
        text = sasl.xoauth2(user, token) if mech == "XOAUTH2" else sasl.oauthbearer(
            user, token, host=server.host, port=server.port)
        return text.encode()

    try:
        status, _ = imap.authenticate(mech, respond)
        return status == "OK"
    except imaplib.IMAP4.error:
        return False
    finally:
        imap.shutdown()


def _source(oauth_server: OAuthTestServer) -> tuple[TokenSource, str]:
    ends = endpoints("custom", authorize_url=oauth_server.authorize_url,
                     token_url=oauth_server.token_url, scopes=("mail", "offline_access"))
    client = OAuth2TokenClient(ends, oauth_server.client_id, account="default", timeout_s=5)

    def browser(request: AuthorizationRequest) -> None:
        threading.Thread(target=lambda: httpx.get(request.url, follow_redirects=True, timeout=5),
                         daemon=True).start()

    tokens = sign_in(client, timeout_s=10, show_url=browser)
    assert tokens.refresh_token
    return TokenSource(client, refresh_token=tokens.refresh_token), tokens.refresh_token


@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_our_sasl_strings_log_in(own_dovecot: OAuthDovecot, oauth_server: OAuthTestServer,
                                 mech: str) -> None:
    source, _ = _source(oauth_server)
    assert _login(own_dovecot, oauth_server.user, source.access_token(), mech)
    assert not _login(own_dovecot, oauth_server.user, "not-a-token", mech)


def test_a_restart_after_every_token_expired_is_survived_by_one_refresh(
        own_dovecot: OAuthDovecot, oauth_server: OAuthTestServer) -> None:
    source, _ = _source(oauth_server)
    stale = source.access_token()
    oauth_server.expire_all()
    own_dovecot.restart()

    assert not _login(own_dovecot, oauth_server.user, stale)
    assert _login(own_dovecot, oauth_server.user, source.force_refresh())
    assert oauth_server.requests["token:refresh_token"] == 2


def test_a_revoked_grant_stops_with_grant_revoked(own_dovecot: OAuthDovecot,
                                                  oauth_server: OAuthTestServer) -> None:
    source, refresh = _source(oauth_server)
    live = source.access_token()
    oauth_server.revoke(refresh)

    assert not _login(own_dovecot, oauth_server.user, live)  # its access tokens died with it
    with pytest.raises(GrantRevokedError):
        source.force_refresh()
