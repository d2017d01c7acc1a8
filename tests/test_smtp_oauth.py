"""The SMTP adapter signs in with XOAUTH2 against an SMTP server that takes nothing else
(aiosmtpd, tokens checked by the test authorization server's introspection): across several
3 s token lifetimes, one refresh when a token is refused, a revoked grant deferring the mail,
and TLS with a private CA and a certificate name when ``host`` is an IP address."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.smtp_oauth import OAuthSmtpServer
from worker.adapters.oauth2 import OAuth2TokenClient, TokenSource
from worker.adapters.smtp import SmtpChannel
from worker.config import SmtpSettings
from worker.domain.oauth_providers import endpoints
from worker.errors import GrantRevokedError, TransientDeliveryError
from worker.ports import Envelope

BODY = b"From: rep@example.test\r\nTo: lead@acme.test\r\nSubject: hi\r\n\r\nHello.\r\n"


def _source(server: OAuthTestServer, refresh: str, skew_s: float = 0.5) -> TokenSource:
    ends = endpoints("custom", authorize_url=server.authorize_url, token_url=server.token_url,
                     scopes=("mail", "offline_access"))
    client = OAuth2TokenClient(ends, server.client_id, account="default", timeout_s=5)
    return TokenSource(client, refresh_token=refresh, skew_s=skew_s)


def _settings(smtp: ScriptedSmtpServer, **changes: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": smtp.host, "port": smtp.port, "timeout_s": 5.0,
                           "retries": 1, "auth": "oauth2", "username": "rep@example.test",
                           "idle_s": 0.5, **changes})


def _envelope(n: int) -> Envelope:
    return Envelope("rep@example.test", f"lead{n}@acme.test", f"<m{n}@acme.test>", BODY)


def test_mail_goes_out_across_several_token_lifetimes(oauth_server: OAuthTestServer,
                                                       oauth_smtp: OAuthSmtpServer) -> None:
    _, refresh = oauth_server.issue()
    source = _source(oauth_server, refresh)

    async def scenario() -> list[int]:
        codes = []
        channel = SmtpChannel("default", _settings(oauth_smtp), source)
        for n in range(4):  # the idle close makes each send sign in again, 3.2 s apart
            result = await channel.send(_envelope(n))
            assert result is not None
            codes.append(result.code)
            await asyncio.sleep(3.2)
        await channel.close()
        return codes

    assert asyncio.run(scenario()) == [250] * 4
    assert len(oauth_smtp.messages) == 4
    assert oauth_smtp.logins.count("rep@example.test") >= 4
    assert oauth_server.requests["token:refresh_token"] >= 2  # tokens were renewed


def test_a_refused_token_is_refreshed_once_and_the_mail_goes(
        oauth_server: OAuthTestServer, oauth_smtp: OAuthSmtpServer) -> None:
    _, refresh = oauth_server.issue()
    source = _source(oauth_server, refresh, skew_s=0)
    source.access_token()
    oauth_server.expire_all()  # the server now refuses the token we hold (not expired for us)

    async def scenario() -> int:
        channel = SmtpChannel("default", _settings(oauth_smtp), source)
        try:
            result = await channel.send(_envelope(0))
            assert result is not None
            return result.code
        finally:
            await channel.close()

    assert asyncio.run(scenario()) == 250
    assert oauth_smtp.refused == 1 and len(oauth_smtp.messages) == 1


def test_a_revoked_grant_defers_the_mail_and_is_reported(
        oauth_server: OAuthTestServer, oauth_smtp: OAuthSmtpServer) -> None:
    _, refresh = oauth_server.issue()
    oauth_server.revoke_user(oauth_server.user)
    revoked: list[tuple[str, GrantRevokedError]] = []

    async def scenario() -> None:
        channel = SmtpChannel("sales", _settings(oauth_smtp), _source(oauth_server, refresh),
                              lambda name, exc: revoked.append((name, exc)))
        try:
            await channel.send(_envelope(0))
        finally:
            await channel.close()

    with pytest.raises(TransientDeliveryError) as caught:
        asyncio.run(scenario())
    assert caught.value.throttled and "nurture mailbox login sales" in caught.value.message
    assert [name for name, _ in revoked] == ["sales"]
    assert refresh not in caught.value.message
    assert oauth_smtp.messages == []


@pytest.mark.parametrize(("name", "ok"), [("localhost", True), ("mail.example.org", False)])
def test_tls_server_name_is_the_name_checked_when_host_is_an_ip(name: str, ok: bool) -> None:
    with ScriptedSmtpServer(starttls=True).start() as server:
        settings = SmtpSettings(host="127.0.0.1", port=server.port, tls="starttls",
                                ca_file=str(server.cafile), tls_server_name=name,
                                timeout_s=5.0, retries=1)

        async def scenario() -> int:
            channel = SmtpChannel("default", settings)
            try:
                result = await channel.send(_envelope(0))
                assert result is not None
                return result.code
            finally:
                await channel.close()

        if ok:
            assert asyncio.run(scenario()) == 250
        else:
            with pytest.raises(TransientDeliveryError, match="CERTIFICATE_VERIFY_FAILED|"
                               "certificate|hostname"):
                asyncio.run(scenario())
            assert server.messages == []


def test_no_token_source_defers_with_the_login_hint(oauth_smtp: OAuthSmtpServer) -> None:
    async def scenario() -> None:
        channel = SmtpChannel("default", _settings(oauth_smtp))
        try:
            await channel.send(_envelope(0))
        finally:
            await channel.close()

    with pytest.raises(TransientDeliveryError, match="nurture mailbox login default"):
        asyncio.run(scenario())
