"""pytest fixtures for the OAuth 2.0 test stack: authorization server, Dovecot, SMTP.

``oauth_server`` is a fresh authorization server per test (tests may expire or revoke
everything). ``oauth_as_shared`` serves the session's ``oauth_dovecot``; tests against it
mint tokens for their own user (``issue(user)``) and revoke only that user.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers.dovecot_oauth import OAuthDovecot
from tests.servers.oauth_as import OAuthTestServer
from tests.servers.smtp_oauth import OAuthSmtpServer


@pytest.fixture
def oauth_server() -> Iterator[OAuthTestServer]:
    """A fresh OAuth 2.0 authorization server on 127.0.0.1 (access tokens live 3 s)."""
    with OAuthTestServer(access_ttl_s=3.0) as server:
        yield server


@pytest.fixture(scope="session")
def oauth_as_shared() -> Iterator[OAuthTestServer]:
    """The authorization server behind ``oauth_dovecot``; do not expire_all() on it."""
    with OAuthTestServer(access_ttl_s=3.0) as server:
        yield server


@pytest.fixture(scope="session")
def oauth_dovecot(oauth_as_shared: OAuthTestServer) -> Iterator[OAuthDovecot]:
    """Dovecot taking only XOAUTH2/OAUTHBEARER, tokens checked by ``oauth_as_shared``."""
    server = OAuthDovecot(oauth_as_shared.introspect_url)
    try:
        yield server.start()
    finally:
        server.close()


@pytest.fixture
def oauth_smtp(oauth_server: OAuthTestServer) -> Iterator[OAuthSmtpServer]:
    """An SMTP server accepting only AUTH XOAUTH2, tokens checked by ``oauth_server``."""
    server = OAuthSmtpServer(oauth_server.introspect_url).start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def own_dovecot(oauth_server: OAuthTestServer) -> Iterator[OAuthDovecot]:
    """A Dovecot of the test's own (it may restart it), checking tokens with ``oauth_server``."""
    server = OAuthDovecot(oauth_server.introspect_url)
    try:
        yield server.start()
    finally:
        server.close()
