"""The test servers work: each fixture starts, answers, and behaves as scripted."""

from __future__ import annotations

import asyncio
import smtplib
import time
from collections.abc import Callable

import aiosmtplib
import psycopg
import pytest
from imapclient import IMAPClient

from tests.servers.dovecot import Account, Dovecot
from tests.servers.postgres import PostgresCluster
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.smtpsink import SmtpSink

MESSAGE = (b"From: Lead <lead@example.test>\r\nTo: dana@acme.test\r\n"
           b"Message-ID: <m1@example.test>\r\nSubject: Hello\r\n\r\nHi Dana\r\n")


def msg(n: int) -> bytes:
    return MESSAGE.replace(b"<m1@", f"<m{n}@".encode())


# -- PostgreSQL ------------------------------------------------------------------------------

@pytest.mark.postgres
def test_pg_url_is_a_fresh_database(pg_url: str) -> None:
    # Given a fresh database / When we query it / Then it answers and holds no tables
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        tables = conn.execute("select count(*) from pg_tables where schemaname = 'public'")
        assert tables.fetchone() == (0,)
    assert pg_url.startswith("postgresql://postgres@127.0.0.1:")


@pytest.mark.postgres
def test_pg_create_database_from_template(pg_cluster: PostgresCluster) -> None:
    # Given a database with a table
    pg_cluster.create_database("tpl_servers")
    with psycopg.connect(pg_cluster.url("tpl_servers"), autocommit=True) as conn:
        conn.execute("create table t (x int)")
        conn.execute("insert into t values (42)")
    # When another database is created from it
    url = pg_cluster.create_database("copy_servers", template="tpl_servers")
    try:
        # Then the copy holds the same rows
        with psycopg.connect(url) as conn:
            assert conn.execute("select x from t").fetchone() == (42,)
    finally:
        pg_cluster.drop_database("copy_servers")
        pg_cluster.drop_database("tpl_servers")


# -- Dovecot ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def own_dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    """A Dovecot these tests may restart without disturbing the shared one."""
    return dovecot_factory()


@pytest.mark.dovecot
def test_imap_append_and_fetch(dovecot: Dovecot, imap_account: Account) -> None:
    # Given a fresh account / When a message is appended
    uid = dovecot.append(imap_account, "INBOX", MESSAGE)
    # Then a client sees exactly it, unread
    with IMAPClient(imap_account.host, imap_account.port, ssl=False, timeout=5) as client:
        client.login(imap_account.username, imap_account.password)
        client.select_folder("INBOX", readonly=True)
        assert client.search("ALL") == [uid]
        data = client.fetch([uid], ["BODY.PEEK[]", "FLAGS"])[uid]
        assert data[b"BODY[]"] == MESSAGE
        assert b"\\Seen" not in data[b"FLAGS"]


@pytest.mark.dovecot
def test_imap_accounts_are_isolated(dovecot: Dovecot, imap_account: Account) -> None:
    # Given two accounts / When one gets mail / Then the other's INBOX stays empty
    other = dovecot.add_user()
    dovecot.append(imap_account, "INBOX", MESSAGE)
    assert dovecot.uids(other) == []
    # And appending to a missing folder creates it
    dovecot.append(other, "Archive", MESSAGE)
    assert dovecot.uids(other, "Archive") == [1]


@pytest.mark.dovecot
def test_imap_tls_and_starttls(dovecot: Dovecot, imap_account: Account) -> None:
    # Given the shared Dovecot with a self-signed certificate
    ctx = imap_account.ssl_context()
    # When clients connect with implicit TLS and with STARTTLS, verifying the certificate
    with IMAPClient(imap_account.host, imap_account.tls_port, ssl=True, ssl_context=ctx,
                    timeout=5) as client:
        client.login(imap_account.username, imap_account.password)
        tls_caps = client.capabilities()
    with IMAPClient(imap_account.host, imap_account.port, ssl=False, timeout=5) as client:
        client.starttls(ctx)
        client.login(imap_account.username, imap_account.password)
        starttls_caps = client.capabilities()
    # Then both log in and see IDLE
    assert b"IDLE" in tls_caps and b"IDLE" in starttls_caps


@pytest.mark.dovecot
def test_imap_noidle_variant_hides_idle(dovecot_noidle: Dovecot) -> None:
    # Given the no-IDLE Dovecot / When a client logs in / Then IDLE is not announced
    account = dovecot_noidle.add_user()
    with IMAPClient(account.host, account.port, ssl=False, timeout=5) as client:
        client.login(account.username, account.password)
        assert b"IDLE" not in client.capabilities()
        assert b"UIDPLUS" in client.capabilities()


@pytest.mark.dovecot
def test_imap_restart_keeps_data_and_port(own_dovecot: Dovecot) -> None:
    # Given a message and a connected client
    account = own_dovecot.add_user()
    own_dovecot.append(account, "INBOX", MESSAGE)
    client = IMAPClient(account.host, account.port, ssl=False, timeout=5)
    client.login(account.username, account.password)
    # When the server restarts
    own_dovecot.restart()
    # Then the old connection is cut, and a new one on the same port sees the message
    with pytest.raises((IMAPClient.AbortError, OSError)):
        client.noop()
    assert own_dovecot.uids(account) == [1]


@pytest.mark.dovecot
def test_imap_reset_uidvalidity_keeps_messages(own_dovecot: Dovecot) -> None:
    # Given a folder with three messages
    account = own_dovecot.add_user()
    for n in range(3):
        own_dovecot.append(account, "INBOX", msg(n))
    # When its UIDVALIDITY is reset
    old, new = own_dovecot.reset_uidvalidity(account)
    # Then the value changed and the messages are still there
    assert new != old
    assert own_dovecot.uidvalidity(account) == new
    assert len(own_dovecot.uids(account)) == 3


@pytest.mark.dovecot
def test_imap_idle_notifies_about_new_mail(dovecot: Dovecot, imap_account: Account) -> None:
    # Given a client in IDLE
    with IMAPClient(imap_account.host, imap_account.port, ssl=False, timeout=5) as client:
        client.login(imap_account.username, imap_account.password)
        client.select_folder("INBOX", readonly=True)
        client.idle()
        # When a message arrives
        started = time.monotonic()
        dovecot.append(imap_account, "INBOX", MESSAGE)
        responses: list[object] = []
        while not any(r[1] == b"EXISTS" for r in responses if isinstance(r, tuple)):
            assert time.monotonic() - started < 5, "no EXISTS within 5 s"
            responses += client.idle_check(timeout=0.2)
        client.idle_done()
    # Then the server said EXISTS within a few seconds
    print(f"\nIDLE notification after {time.monotonic() - started:.3f} s")


# -- scripted SMTP ---------------------------------------------------------------------------

async def _send(server: ScriptedSmtpServer, data: bytes = MESSAGE,
                rcpt: str = "lead@example.test", **kwargs: object) -> aiosmtplib.SMTPResponse:
    client = aiosmtplib.SMTP(hostname=server.host, port=server.port, **kwargs)  # type: ignore[arg-type]
    await client.connect()
    try:
        _errors, message = await client.sendmail("dana@acme.test", [rcpt], data)
        return aiosmtplib.SMTPResponse(250, message)
    finally:
        if client.is_connected:
            client.close()


async def test_smtp_records_accepted_messages(smtp_server: ScriptedSmtpServer) -> None:
    # Given the server / When two messages are sent / Then both are recorded with their ids
    await _send(smtp_server, msg(1))
    await _send(smtp_server, msg(2))
    assert smtp_server.message_ids() == {"<m1@example.test>": 1, "<m2@example.test>": 1}
    first = smtp_server.messages[0]
    assert first.mail_from == "dana@acme.test" and first.rcpt_tos == ("lead@example.test",)
    assert first.data == msg(1)
    assert first.accepted_at.tzinfo is not None
    assert smtp_server.messages[0].connection_id != smtp_server.messages[1].connection_id


async def test_smtp_reject_recipient(smtp_server: ScriptedSmtpServer) -> None:
    # Given a rejected recipient / When mail is sent to it / Then the client sees the 550
    smtp_server.reject("gone@example.test", "550 5.1.1 <gone@example.test>: no such user")
    with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as info:
        await _send(smtp_server, rcpt="gone@example.test")
    refused = info.value.recipients[0]
    assert refused.code == 550 and "no such user" in refused.message
    assert smtp_server.messages == []


@pytest.mark.parametrize("reply", ["421 4.7.0 Try again later", "451 4.3.0 Local error",
                                   "454 4.7.0 TLS not available", "552 5.3.4 Too big"])
async def test_smtp_fail_next(smtp_server: ScriptedSmtpServer, reply: str) -> None:
    # Given one scripted failure
    smtp_server.fail_next(1, reply)
    # When two messages are sent / Then the first gets the reply and the second goes through
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        await _send(smtp_server, msg(1))
    assert info.value.code == int(reply[:3])
    await _send(smtp_server, msg(2))
    assert smtp_server.message_ids() == {"<m2@example.test>": 1}


async def test_smtp_fail_next_at_mail_stage(smtp_server: ScriptedSmtpServer) -> None:
    # Given a 421 scripted for MAIL FROM / When a message is sent / Then the sender is refused
    smtp_server.fail_next(1, "421 4.7.0 Too many connections", stage="mail")
    with pytest.raises(aiosmtplib.SMTPResponseException) as info:
        await _send(smtp_server)
    assert info.value.code == 421


async def test_smtp_stall_then_accepts(smtp_server: ScriptedSmtpServer) -> None:
    # Given a stall longer than the client's timeout
    smtp_server.stall(0.6)
    # When a message is sent / Then the client times out
    with pytest.raises(aiosmtplib.SMTPTimeoutError):
        await _send(smtp_server, timeout=0.2)
    # And the server still ends up accepting it (the duplicate-risk case)
    await asyncio.to_thread(smtp_server.wait_for, 1, 3.0)
    assert smtp_server.message_ids() == {"<m1@example.test>": 1}


async def test_smtp_drop_mid_data(smtp_server: ScriptedSmtpServer) -> None:
    # Given a scripted drop / When a message is sent / Then the connection is lost, nothing kept
    smtp_server.drop_mid_data(1)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await _send(smtp_server)
    assert smtp_server.messages == []


async def test_smtp_down_and_up(smtp_server: ScriptedSmtpServer) -> None:
    # Given a connected client
    client = aiosmtplib.SMTP(hostname=smtp_server.host, port=smtp_server.port, timeout=2)
    await client.connect()
    # When the server goes down / Then the connection is cut and new ones are refused
    await asyncio.to_thread(smtp_server.down)
    with pytest.raises(aiosmtplib.SMTPServerDisconnected):
        await client.noop()
    with pytest.raises(aiosmtplib.SMTPConnectError):
        await _send(smtp_server)
    # When it comes back up on the same port / Then mail goes through again
    await asyncio.to_thread(smtp_server.up)
    await _send(smtp_server)
    assert len(smtp_server.messages) == 1


async def test_smtp_auth_and_starttls() -> None:
    # Given a server with AUTH and STARTTLS
    with ScriptedSmtpServer(auth={"dana": "s3cret"}, starttls=True) as server:
        ctx = server.client_ssl_context()
        # When a client sends without logging in / Then it is refused
        with pytest.raises(aiosmtplib.SMTPSenderRefused):
            await _send(server, tls_context=ctx, start_tls=True)
        # When it logs in with a wrong password / Then it is refused
        client = aiosmtplib.SMTP(hostname=server.host, port=server.port, tls_context=ctx,
                                 start_tls=True)
        await client.connect()
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await client.login("dana", "wrong")
        # When it logs in properly / Then the mail is accepted
        await client.login("dana", "s3cret")
        await client.sendmail("dana@acme.test", ["lead@example.test"], MESSAGE)
        await client.quit()
        assert len(server.messages) == 1


async def test_smtp_implicit_tls() -> None:
    # Given a server speaking TLS from the start / When a verifying client sends / Then accepted
    with ScriptedSmtpServer(implicit_tls=True) as server:
        await _send(server, use_tls=True, tls_context=server.client_ssl_context())
        assert len(server.messages) == 1


# -- smtp-sink -------------------------------------------------------------------------------

def test_smtp_sink_counts(smtp_sink: SmtpSink) -> None:
    # Given smtp-sink / When 50 messages go over two connections / Then it counts 50
    for _ in range(2):
        with smtplib.SMTP(smtp_sink.host, smtp_sink.port, timeout=5) as client:
            for n in range(25):
                client.sendmail("dana@acme.test", ["lead@example.test"], msg(n))
    assert smtp_sink.wait_for(50, timeout_s=5) == 50
