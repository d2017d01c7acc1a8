"""pytest fixtures for the real test servers; load with ``pytest_plugins = ["tests.servers.fixtures"]``.

Session fixtures start one server for the whole run; function fixtures hand each test a
fresh database, IMAP user or SMTP server, so tests never see each other's data.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from tests.servers.dovecot import Account, Dovecot
from tests.servers.postgres import PostgresCluster
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.smtpsink import SmtpSink


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster]:
    """One throwaway PostgreSQL cluster for the session (skips if PostgreSQL is missing)."""
    cluster = PostgresCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_cluster: PostgresCluster) -> Iterator[str]:
    """A fresh, empty database for this test: ``postgresql://postgres@127.0.0.1:PORT/t_...``."""
    name = f"t_{secrets.token_hex(6)}"
    url = pg_cluster.create_database(name)
    try:
        yield url
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(scope="session")
def dovecot_factory() -> Iterator[Callable[..., Dovecot]]:
    """Start extra Dovecot instances (``dovecot_factory(idle=False, ssl=True)``), all closed
    at the end of the session; use one for tests that restart or break the server."""
    started: list[Dovecot] = []

    def make(*, idle: bool = True, ssl: bool = False) -> Dovecot:
        server = Dovecot(idle=idle, ssl=ssl)
        started.append(server)
        return server.start()

    try:
        yield make
    finally:
        for server in started:
            server.close()


@pytest.fixture(scope="session")
def dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    """The shared Dovecot (IDLE on; STARTTLS on ``port`` and TLS on ``tls_port``).

    Do not restart it from a test; take your own from ``dovecot_factory`` for that.
    """
    return dovecot_factory(ssl=True)


@pytest.fixture(scope="session")
def dovecot_noidle(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    """A Dovecot that does not announce IDLE, so clients must poll."""
    return dovecot_factory(idle=False)


@pytest.fixture
def imap_account(dovecot: Dovecot) -> Account:
    """A fresh user (empty INBOX) on the shared Dovecot: host, port, username, password."""
    return dovecot.add_user()


@pytest.fixture
def smtp_server() -> Iterator[ScriptedSmtpServer]:
    """A fresh scriptable SMTP server on 127.0.0.1 (no AUTH, no TLS)."""
    server = ScriptedSmtpServer().start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """Postfix's smtp-sink on 127.0.0.1, counting accepted messages (skips if missing)."""
    sink = SmtpSink().start()
    try:
        yield sink
    finally:
        sink.stop()
