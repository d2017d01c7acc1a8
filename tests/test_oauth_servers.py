"""The OAuth 2.0 test stack works: authorization server, Dovecot's oauth2 passdb, XOAUTH2 SMTP.

The servers are spoken to with plain HTTP (httpx), imapclient and smtplib, not with
Nurture's own client, so that a fault in either side shows up in one place.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import smtplib
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from imapclient.exceptions import LoginError

from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp_oauth import OAuthSmtpServer

REDIRECT = "http://127.0.0.1:8765/callback"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def _authorize(server: OAuthTestServer, challenge: str, **extra: str) -> dict[str, str]:
    params = {"response_type": "code", "client_id": server.client_id, "redirect_uri": REDIRECT,
              "state": "st-1", "code_challenge": challenge, "code_challenge_method": "S256",
              "scope": "mail offline_access", **extra}
    response = httpx.get(server.authorize_url, params=params)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def _code_grant(server: OAuthTestServer) -> dict[str, object]:
    verifier, challenge = _pkce()
    code = _authorize(server, challenge)["code"]
    response = httpx.post(server.token_url, data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
        "client_id": server.client_id, "code_verifier": verifier})
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


# -- the authorization server ---------------------------------------------------------------

def test_authorization_code_with_pkce_gives_tokens_that_introspect_active(
        oauth_server: OAuthTestServer) -> None:
    tokens = _code_grant(oauth_server)

    assert tokens["token_type"] == "Bearer" and tokens["refresh_token"]
    info = httpx.post(oauth_server.introspect_url, data={"token": tokens["access_token"]}).json()
    assert info["active"] is True and info["username"] == oauth_server.user


def test_authorize_redirect_carries_state(oauth_server: OAuthTestServer) -> None:
    _, challenge = _pkce()
    assert _authorize(oauth_server, challenge)["state"] == "st-1"


def test_wrong_code_verifier_is_invalid_grant_and_code_is_single_use(
        oauth_server: OAuthTestServer) -> None:
    verifier, challenge = _pkce()
    code = _authorize(oauth_server, challenge)["code"]
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "client_id": oauth_server.client_id}

    wrong = httpx.post(oauth_server.token_url, data={**form, "code_verifier": "x" * 43})
    again = httpx.post(oauth_server.token_url, data={**form, "code_verifier": verifier})

    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_grant"
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_authorize_without_pkce_redirects_with_error(oauth_server: OAuthTestServer) -> None:
    response = httpx.get(oauth_server.authorize_url, params={
        "response_type": "code", "client_id": oauth_server.client_id, "redirect_uri": REDIRECT,
        "state": "s"})
    query = parse_qs(urlsplit(response.headers["location"]).query)
    assert query["error"] == ["invalid_request"] and query["state"] == ["s"]


def test_authorize_refuses_non_loopback_redirect(oauth_server: OAuthTestServer) -> None:
    _, challenge = _pkce()
    response = httpx.get(oauth_server.authorize_url, params={
        "response_type": "code", "client_id": oauth_server.client_id, "state": "s",
        "redirect_uri": "http://evil.test/cb", "code_challenge": challenge,
        "code_challenge_method": "S256"})
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"


def test_denied_consent_redirects_with_access_denied(oauth_server: OAuthTestServer) -> None:
    oauth_server.deny_next_authorize()
    _, challenge = _pkce()
    assert _authorize(oauth_server, challenge)["error"] == "access_denied"


def test_refresh_gives_a_new_access_token_until_the_grant_is_revoked(
        oauth_server: OAuthTestServer) -> None:
    tokens = _code_grant(oauth_server)
    refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"],
               "client_id": oauth_server.client_id}

    fresh = httpx.post(oauth_server.token_url, data=refresh).json()
    assert fresh["access_token"] != tokens["access_token"]

    httpx.post(oauth_server.revoke_url, data={"token": tokens["refresh_token"],
                                               "token_type_hint": "refresh_token"})
    refused = httpx.post(oauth_server.token_url, data=refresh)

    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    for token in (tokens["access_token"], fresh["access_token"]):
        assert httpx.post(oauth_server.introspect_url, data={"token": token}).json() == {
            "active": False}


def test_client_credentials_checks_the_secret(oauth_server: OAuthTestServer) -> None:
    good = httpx.post(oauth_server.token_url, data={"grant_type": "client_credentials"},
                      auth=(oauth_server.client_id, oauth_server.client_secret))
    bad = httpx.post(oauth_server.token_url, data={"grant_type": "client_credentials"},
                     auth=(oauth_server.client_id, "wrong"))

    assert good.status_code == 200 and "refresh_token" not in good.json()
    info = httpx.post(oauth_server.introspect_url, data={"token": good.json()["access_token"]})
    assert info.json()["username"] == oauth_server.app_user
    assert bad.status_code == 401 and bad.json()["error"] == "invalid_client"


def test_access_tokens_expire(oauth_server: OAuthTestServer) -> None:
    live, _ = oauth_server.issue()
    dead, _ = oauth_server.issue(ttl_s=0)

    assert oauth_server.introspect(live)["active"] is True
    assert oauth_server.introspect(dead) == {"active": False}
    oauth_server.expire_all()
    assert oauth_server.introspect(live) == {"active": False}


def test_unknown_grant_type_is_rfc6749_error(oauth_server: OAuthTestServer) -> None:
    response = httpx.post(oauth_server.token_url, data={"grant_type": "password",
                                                        "client_id": oauth_server.client_id})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert response.headers["content-type"] == "application/json"


# -- Dovecot with the oauth2 passdb ---------------------------------------------------------

@pytest.mark.dovecot
@pytest.mark.parametrize("mech", ["XOAUTH2", "OAUTHBEARER"])
def test_dovecot_accepts_a_live_token(oauth_dovecot: OAuthDovecot,
                                      oauth_as_shared: OAuthTestServer, mech: str) -> None:
    user = f"rep{secrets.token_hex(3)}@example.test"
    token, _ = oauth_as_shared.issue(user)

    with oauth_dovecot.oauth_client(user, token, mech=mech) as client:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0


@pytest.mark.dovecot
def test_dovecot_refuses_expired_revoked_foreign_tokens_and_passwords(
        oauth_dovecot: OAuthDovecot, oauth_as_shared: OAuthTestServer) -> None:
    user = f"rep{secrets.token_hex(3)}@example.test"
    expired, _ = oauth_as_shared.issue(user, ttl_s=0)
    revoked, _ = oauth_as_shared.issue(user)
    other, _ = oauth_as_shared.issue("someone.else@example.test")
    oauth_as_shared.revoke(revoked)

    for token in (expired, revoked, other):
        with pytest.raises(LoginError):
            oauth_dovecot.oauth_client(user, token)
    from imapclient import IMAPClient

    with IMAPClient(oauth_dovecot.host, oauth_dovecot.port, ssl=False, timeout=10) as client:
        assert b"AUTH=PLAIN" not in client.capabilities()
        with pytest.raises(LoginError):
            client.login(user, "a-password")


# -- SMTP with AUTH XOAUTH2 -----------------------------------------------------------------

def _xoauth2(user: str, token: str) -> str:
    return f"user={user}\x01auth=Bearer {token}\x01\x01"


def test_smtp_accepts_xoauth2_with_a_live_token_and_records_the_mail(
        oauth_smtp: OAuthSmtpServer, oauth_server: OAuthTestServer) -> None:
    token, _ = oauth_server.issue()
    with smtplib.SMTP(oauth_smtp.host, oauth_smtp.port, timeout=10) as client:
        client.ehlo()
        assert client.esmtp_features["auth"].split() == ["XOAUTH2"]
        code, _ = client.auth("XOAUTH2", lambda challenge=None: _xoauth2(oauth_server.user, token))
        client.sendmail(oauth_server.user, ["lead@example.test"], b"Subject: hi\r\n\r\nbody\r\n")

    assert code == 235 and oauth_smtp.logins == [oauth_server.user]
    assert len(oauth_smtp.wait_for(1)) == 1


def test_smtp_refuses_an_expired_token_with_the_error_challenge_then_535(
        oauth_smtp: OAuthSmtpServer, oauth_server: OAuthTestServer) -> None:
    token, _ = oauth_server.issue(ttl_s=0)
    with smtplib.SMTP(oauth_smtp.host, oauth_smtp.port, timeout=10) as client:
        client.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
            client.auth("XOAUTH2",
                        lambda challenge=None: _xoauth2(oauth_server.user, token)
                        if challenge is None else "")
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail(oauth_server.user, ["lead@example.test"], b"Subject: x\r\n\r\n.\r\n")

    assert refused.value.smtp_code == 535 and oauth_smtp.refused == 1
    assert oauth_smtp.messages == []
