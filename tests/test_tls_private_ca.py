"""Private CAs and certificate names, against Dovecot's implicit-TLS port (a real server
whose certificate, for localhost and 127.0.0.1, is its own CA and in no system trust store)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path

import pytest

from tests.servers.dovecot import Dovecot
from worker.adapters.imap_session import ImapSession
from worker.adapters.tls import client_context, server_name
from worker.errors import ConfigError, MailboxError


def _banner(dovecot: Dovecot, context: ssl.SSLContext, name: str) -> bytes:
    assert dovecot.tls_port is not None
    with socket.create_connection((dovecot.host, dovecot.tls_port), timeout=10) as raw, \
            context.wrap_socket(raw, server_hostname=name) as tls:
        return tls.recv(200)


@pytest.mark.dovecot
def test_the_private_ca_is_trusted_for_the_connection(dovecot: Dovecot) -> None:
    context = client_context(str(dovecot.cafile))
    assert _banner(dovecot, context, server_name("127.0.0.1", "localhost")).startswith(b"* OK")
    assert _banner(dovecot, context, server_name("127.0.0.1")).startswith(b"* OK")


@pytest.mark.dovecot
def test_without_the_ca_file_the_certificate_is_refused(dovecot: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        _banner(dovecot, client_context(), "localhost")


@pytest.mark.dovecot
def test_a_name_the_certificate_does_not_carry_is_refused(dovecot: Dovecot) -> None:
    with pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"):
        _banner(dovecot, client_context(str(dovecot.cafile)), "imap.other.example")


def test_a_file_that_is_not_pem_is_a_config_error(tmp_path: Path) -> None:
    bad = tmp_path / "ca.pem"
    bad.write_text("not a certificate")
    with pytest.raises(ConfigError) as refused:
        client_context(str(bad), key="imap.ca_file")
    assert refused.value.key == "imap.ca_file"


@pytest.mark.dovecot
@pytest.mark.parametrize(("name", "ok"), [("localhost", True), ("imap.other.example", False)])
def test_the_imap_session_checks_tls_server_name_and_the_ca_file(dovecot: Dovecot, name: str,
                                                                  ok: bool) -> None:
    account = dovecot.add_user()
    settings = account.imap_settings(tls="tls", host="127.0.0.1", ca_file=str(dovecot.cafile),
                                     tls_server_name=name, timeout_s=5.0)
    if not ok:
        with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED|mismatch"):
            ImapSession.open(settings, readonly=True, timeout_s=5)
        return
    session = ImapSession.open(settings, readonly=True, timeout_s=5)
    try:
        assert session.uidvalidity > 0
    finally:
        session.close()
