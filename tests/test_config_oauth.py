"""Configuration of OAuth 2.0 sign-in, private CAs, bounce guard keys, DNS and DKIM selectors."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.config import ConfigError, describe, load_settings
from worker.config_mail import OAuth2Settings, oauth2_for, parse_nameserver

MICROSOFT = """
[smtp]
auth = "oauth2"
username = "dana@acme.example"
[imap]
auth = "oauth2"
username = "dana@acme.example"
[oauth2]
provider = "microsoft"
tenant = "acme.onmicrosoft.com"
client_id = "11111111-2222-3333-4444-555555555555"
"""


def _load(tmp_path: Path, text: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    path = tmp_path / "nurture.toml"
    path.write_text(text)
    return load_settings(path, environ=env or {})


def test_defaults_keep_password_auth_and_the_bounce_guard_figures(tmp_path: Path) -> None:
    s = _load(tmp_path, "")
    assert (s.smtp.auth, s.imap.auth) == ("password", "password")
    assert (s.smtp.max_bounce_rate, s.smtp.bounce_window) == (0.05, 200)
    assert s.dns.nameservers == () and s.oauth2.flow == "authorization_code"


def test_a_microsoft_mailbox_from_the_file(tmp_path: Path) -> None:
    s = _load(tmp_path, MICROSOFT)
    assert s.smtp.auth == "oauth2" and s.oauth2.provider == "microsoft"
    assert s.oauth2.tenant == "acme.onmicrosoft.com"


def test_environment_overrides_oauth_keys_and_reads_the_secret(tmp_path: Path) -> None:
    s = _load(tmp_path, MICROSOFT, {
        "NURTURE_OAUTH2__CLIENT_ID": "from-env", "NURTURE_OAUTH2__CLIENT_SECRET": "s3cr3t-value",
        "NURTURE_OAUTH2__FLOW": "client_credentials",
        "NURTURE_OAUTH2__SCOPES": "https://outlook.office365.com/.default",
        "NURTURE_SMTP__MAX_BOUNCE_RATE": "0.02", "NURTURE_SMTP__BOUNCE_WINDOW": "500",
        "NURTURE_DNS__NAMESERVERS": "127.0.0.1:5353, ::1"})
    assert s.oauth2.client_id == "from-env" and s.oauth2.flow == "client_credentials"
    assert s.oauth2.client_secret.reveal() == "s3cr3t-value"
    assert s.oauth2.scopes == ("https://outlook.office365.com/.default",)
    assert (s.smtp.max_bounce_rate, s.smtp.bounce_window) == (0.02, 500)
    assert s.dns.nameservers == ("127.0.0.1:5353", "::1")
    assert "s3cr3t-value" not in repr(s) and "s3cr3t-value" not in str(describe(s))
    assert describe(s)["oauth2"]["client_secret"] == "********"


def test_a_mailbox_with_its_own_registration_and_selectors(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("pem")
    s = _load(tmp_path, MICROSOFT + """
[mailboxes.sales]
address = "Sam <sam@sales.example>"
dkim_selectors = ["mail2024", "s1"]
[mailboxes.sales.smtp]
auth = "oauth2"
username = "sam@sales.example"
ca_file = "CA"
tls_server_name = "smtp.sales.example"
[mailboxes.sales.oauth2]
provider = "google"
client_id = "x.apps.googleusercontent.com"
""".replace('"CA"', f'"{tmp_path / "ca.pem"}"'), {
        "NURTURE_MAILBOXES__SALES__OAUTH2__CLIENT_SECRET": "gsecret"})
    sales = s.mailboxes["sales"]
    assert sales.dkim_selectors == ("mail2024", "s1")
    assert sales.smtp.tls_server_name == "smtp.sales.example"
    assert sales.oauth2.client_secret.reveal() == "gsecret"
    assert oauth2_for(s.oauth2, sales.oauth2, "sales")[1] == "mailboxes.sales.oauth2"
    # A mailbox without its own [oauth2] signs in with the top-level registration.
    assert oauth2_for(s.oauth2, OAuth2Settings(), "other")[1] == "oauth2"


@pytest.mark.parametrize(("text", "env", "key"), [
    (MICROSOFT, {"NURTURE_SMTP__AUTH": "kerberos"}, "smtp.auth"),
    (MICROSOFT, {"NURTURE_IMAP__USERNAME": ""}, "imap.username"),
    (MICROSOFT, {"NURTURE_OAUTH2__PROVIDER": ""}, "oauth2.provider"),
    (MICROSOFT, {"NURTURE_OAUTH2__PROVIDER": "yahoo"}, "oauth2.provider"),
    (MICROSOFT, {"NURTURE_OAUTH2__CLIENT_ID": ""}, "oauth2.client_id"),
    (MICROSOFT, {"NURTURE_OAUTH2__FLOW": "implicit"}, "oauth2.flow"),
    (MICROSOFT, {"NURTURE_OAUTH2__FLOW": "client_credentials"}, "oauth2.client_secret"),
    (MICROSOFT, {"NURTURE_OAUTH2__PROVIDER": "custom"}, "oauth2.authorize_url"),
    (MICROSOFT, {"NURTURE_SMTP__CA_FILE": "/no/such/ca.pem"}, "smtp.ca_file"),
    (MICROSOFT, {"NURTURE_IMAP__TLS_SERVER_NAME": "not a host!"}, "imap.tls_server_name"),
    (MICROSOFT, {"NURTURE_SMTP__MAX_BOUNCE_RATE": "1.5"}, "smtp.max_bounce_rate"),
    (MICROSOFT, {"NURTURE_SMTP__MAX_BOUNCE_RATE": "0"}, "smtp.max_bounce_rate"),
    (MICROSOFT, {"NURTURE_SMTP__BOUNCE_WINDOW": "0"}, "smtp.bounce_window"),
    (MICROSOFT, {"NURTURE_DNS__NAMESERVERS": "dns.example"}, "dns.nameservers[0]"),
    (MICROSOFT, {"NURTURE_DNS__NAMESERVERS": "127.0.0.1:99999"}, "dns.nameservers[0]"),
    ('[mailboxes.s]\naddress = "s@x.example"\ndkim_selectors = ["bad selector"]\n', {},
     "mailboxes.s.dkim_selectors"),
    ('[mailboxes.s]\naddress = "s@x.example"\ndkim_selectors = "s1"\n', {}, None),
    ('[mailboxes.s]\naddress = "s@x.example"\ndkim_selectors = [1]\n', {},
     "mailboxes.s.dkim_selectors"),
    ('[mailboxes.s]\naddress = "s@x.example"\n[mailboxes.s.imap]\nauth = "oauth2"\n'
     'username = "s@x.example"\n[mailboxes.s.oauth2]\nprovider = "custom"\nclient_id = "c"\n'
     'token_url = "https://t.example/token"\nauthorize_url = "https://t.example/a"\n', {},
     "mailboxes.s.oauth2.scopes"),
])
def test_bad_values_name_the_key(tmp_path: Path, text: str, env: dict[str, str],
                                 key: str | None) -> None:
    if key is None:  # a plain string is accepted as a one-item list
        assert _load(tmp_path, text, env).mailboxes["s"].dkim_selectors == ("s1",)
        return
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, text, env)
    assert refused.value.key == key


def test_a_client_secret_in_the_file_is_refused_with_the_env_name(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as refused:
        _load(tmp_path, '[mailboxes.sales.oauth2]\nclient_secret = "in-file-secret"\n')
    assert "NURTURE_MAILBOXES__SALES__OAUTH2__CLIENT_SECRET" in str(refused.value)
    assert "in-file-secret" not in str(refused.value)


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1", ("127.0.0.1", 53)), ("127.0.0.1:5353", ("127.0.0.1", 5353)),
    ("::1", ("::1", 53)), ("[::1]:5353", ("::1", 5353))])
def test_nameserver_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_nameserver(text) == expected
