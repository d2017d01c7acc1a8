"""The OAuth 2.0 token client against the test authorization server (real HTTP on loopback)."""

from __future__ import annotations

import smtplib
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp_oauth import OAuthSmtpServer
from worker.adapters.oauth2 import AuthorizationRequest, OAuth2TokenClient, TokenSource, token_client
from worker.adapters.oauth_loopback import LoopbackListener, sign_in
from worker.config import load_settings
from worker.domain import sasl
from worker.domain.oauth_providers import OAuthEndpoints, endpoints
from worker.errors import ConfigError, GrantRevokedError, LoginTimeout, OAuthError


def _client(server: OAuthTestServer, *, secret: str = "",
            flow: str = "authorization_code") -> OAuth2TokenClient:
    ends = endpoints("custom", flow, authorize_url=server.authorize_url,
                     token_url=server.token_url, scopes=("mail", "offline_access"))
    return OAuth2TokenClient(ends, server.client_id, secret, account="sales", timeout_s=5)


def _browser(request: AuthorizationRequest) -> None:
    """What a person's browser does: open the URL, follow the redirect to the loopback."""
    threading.Thread(target=lambda: httpx.get(request.url, follow_redirects=True, timeout=5),
                     daemon=True).start()


def _signed_in(server: OAuthTestServer) -> tuple[OAuth2TokenClient, str]:
    client = _client(server)
    tokens = sign_in(client, timeout_s=10, show_url=_browser)
    assert tokens.refresh_token
    return client, tokens.refresh_token


# -- sign-in --------------------------------------------------------------------------------

def test_sign_in_with_pkce_and_loopback_redirect_gives_tokens_for_the_user(
        oauth_server: OAuthTestServer) -> None:
    seen: list[AuthorizationRequest] = []

    tokens = sign_in(_client(oauth_server), timeout_s=10,
                     show_url=lambda r: (seen.append(r), _browser(r)))

    query = parse_qs(urlsplit(seen[0].url).query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["redirect_uri"][0].startswith("http://127.0.0.1:")
    assert oauth_server.introspect(tokens.access_token)["username"] == oauth_server.user
    assert tokens.refresh_token and tokens.expires_at > time.time()
    assert tokens.access_token not in repr(tokens) and tokens.refresh_token not in repr(tokens)


def test_declined_consent_is_an_oauth_error_with_the_providers_words(
        oauth_server: OAuthTestServer) -> None:
    oauth_server.deny_next_authorize()
    with pytest.raises(OAuthError, match="access_denied: the user declined"):
        sign_in(_client(oauth_server), timeout_s=10, show_url=_browser)


def test_nobody_signs_in_before_the_timeout(oauth_server: OAuthTestServer) -> None:
    with pytest.raises(LoginTimeout):
        sign_in(_client(oauth_server), timeout_s=0.3, show_url=lambda r: None)


def test_a_redirect_with_another_state_is_refused_and_its_code_not_exchanged() -> None:
    listener = LoopbackListener()
    threading.Thread(target=lambda: httpx.get(
        f"{listener.redirect_uri}?code=stolen&state=other", timeout=5), daemon=True).start()

    with pytest.raises(OAuthError, match="invalid_state"):
        listener.wait_for_code("mine", timeout_s=10)


# -- refresh --------------------------------------------------------------------------------

def test_token_source_reuses_a_live_token_and_refreshes_before_expiry(
        oauth_server: OAuthTestServer) -> None:
    client, refresh = _signed_in(oauth_server)
    offset = [0.0]
    source = TokenSource(client, refresh_token=refresh, skew_s=1.0,
                         clock=lambda: time.time() + offset[0])

    first = source.access_token()
    again = source.access_token()
    offset[0] = 2.5  # 3 s tokens, 1 s skew: inside the refresh window
    later = source.access_token()

    assert first == again != later
    assert oauth_server.requests["token:refresh_token"] == 2
    assert oauth_server.introspect(later)["active"] is True


def test_force_refresh_after_a_refusal_gets_a_token_the_server_takes(
        oauth_server: OAuthTestServer, oauth_smtp: OAuthSmtpServer) -> None:
    client, refresh = _signed_in(oauth_server)
    source = TokenSource(client, refresh_token=refresh)
    stale = source.access_token()
    oauth_server.expire_all()  # as after a server restart past every token's lifetime

    assert not _smtp_login(oauth_smtp, oauth_server.user, stale)
    assert _smtp_login(oauth_smtp, oauth_server.user, source.force_refresh())


def test_rotated_refresh_tokens_are_handed_to_the_caller(oauth_server: OAuthTestServer) -> None:
    oauth_server.rotate_refresh = True
    client, first = _signed_in(oauth_server)
    stored: list[str] = []
    source = TokenSource(client, refresh_token=first, on_refresh_token=stored.append)

    source.access_token()
    source.force_refresh()

    assert len(stored) == 2 and first not in stored and stored[0] != stored[1]
    with pytest.raises(GrantRevokedError):
        client.refresh(first)


def test_a_revoked_grant_raises_grant_revoked_without_the_token_in_the_message(
        oauth_server: OAuthTestServer) -> None:
    client, refresh = _signed_in(oauth_server)
    oauth_server.revoke(refresh)

    with pytest.raises(GrantRevokedError) as refused:
        TokenSource(client, refresh_token=refresh).access_token()
    assert refused.value.error == "invalid_grant" and refused.value.account == "sales"
    assert refresh not in str(refused.value)


def test_without_a_refresh_token_the_source_asks_for_a_login(
        oauth_server: OAuthTestServer) -> None:
    with pytest.raises(GrantRevokedError, match="mailbox login"):
        TokenSource(_client(oauth_server)).access_token()


# -- client credentials and failures --------------------------------------------------------

def test_client_credentials_with_the_secret(oauth_server: OAuthTestServer) -> None:
    client = _client(oauth_server, secret=oauth_server.client_secret, flow="client_credentials")
    token = TokenSource(client).access_token()
    assert oauth_server.introspect(token)["username"] == oauth_server.app_user


def test_client_credentials_with_a_wrong_secret_is_invalid_client(
        oauth_server: OAuthTestServer) -> None:
    client = _client(oauth_server, secret="wrong", flow="client_credentials")
    with pytest.raises(OAuthError) as refused:
        client.client_credentials()
    assert refused.value.error == "invalid_client"
    assert not isinstance(refused.value, GrantRevokedError)


def test_an_unreachable_token_endpoint_is_an_oauth_error() -> None:
    listener = LoopbackListener()
    dead = f"http://127.0.0.1:{listener.port}/token"
    listener.close()  # nothing listens there any more
    client = OAuth2TokenClient(OAuthEndpoints("authorization_code", "", dead, ("mail",)), "c",
                               timeout_s=2)
    with pytest.raises(OAuthError, match="unreachable"):
        client.refresh("r")


# -- provider presets (pure) ----------------------------------------------------------------

def test_microsoft_preset_uses_the_tenant_and_mail_scopes() -> None:
    ends = endpoints("microsoft", tenant="contoso.onmicrosoft.com")
    assert ends.authorize_url == ("https://login.microsoftonline.com/contoso.onmicrosoft.com"
                                  "/oauth2/v2.0/authorize")
    assert ends.token_url.endswith("/contoso.onmicrosoft.com/oauth2/v2.0/token")
    assert "https://outlook.office.com/SMTP.Send" in ends.scopes
    assert "offline_access" in ends.scopes
    app = endpoints("microsoft", "client_credentials", tenant="contoso.onmicrosoft.com")
    assert app.scopes == ("https://outlook.office365.com/.default",)


def test_google_preset_asks_for_offline_access_in_the_url() -> None:
    ends = endpoints("google")
    client = OAuth2TokenClient(ends, "id.apps.googleusercontent.com", "s")
    query = parse_qs(urlsplit(client.authorization_request(
        "http://127.0.0.1:5000/callback").url).query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["scope"] == ["https://mail.google.com/"]


@pytest.mark.parametrize(("provider", "flow", "kwargs", "key"), [
    ("custom", "authorization_code", {"token_url": "https://t/x", "scopes": ("a",)},
     "mailboxes.s.oauth2.authorize_url"),
    ("custom", "client_credentials", {"token_url": "https://t/x"}, "mailboxes.s.oauth2.scopes"),
    ("microsoft", "client_credentials", {}, "mailboxes.s.oauth2.tenant"),
    ("google", "client_credentials", {}, "mailboxes.s.oauth2.flow"),
    ("yahoo", "authorization_code", {}, "mailboxes.s.oauth2.provider"),
    ("custom", "authorization_code", {"authorize_url": "ftp://x", "token_url": "https://t",
                                      "scopes": ("a",)}, "mailboxes.s.oauth2.authorize_url"),
])
def test_bad_provider_settings_name_the_key(provider: str, flow: str, kwargs: dict[str, object],
                                            key: str) -> None:
    with pytest.raises(ConfigError) as refused:
        endpoints(provider, flow, prefix="mailboxes.s.oauth2", **kwargs)  # type: ignore[arg-type]
    assert refused.value.key == key


def _smtp_login(server: OAuthSmtpServer, user: str, token: str) -> bool:
    with smtplib.SMTP(server.host, server.port, timeout=10) as client:
        client.ehlo()
        try:
            client.auth("XOAUTH2", lambda challenge=None: sasl.xoauth2(user, token)
                        if challenge is None else "")
        except smtplib.SMTPAuthenticationError:
            return False
    return True


def test_a_client_from_settings_with_the_secret_from_the_environment(
        oauth_server: OAuthTestServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "nurture.toml"
    path.write_text(f"""
[smtp]
auth = "oauth2"
username = "app@example.test"
[oauth2]
provider = "custom"
flow = "client_credentials"
client_id = "{oauth_server.client_id}"
token_url = "{oauth_server.token_url}"
scopes = ["mail"]
""")
    s = load_settings(path, environ={"NURTURE_OAUTH2__CLIENT_SECRET": oauth_server.client_secret})
    token = TokenSource(token_client(s.oauth2, account="default")).access_token()
    assert oauth_server.introspect(token)["username"] == oauth_server.app_user
