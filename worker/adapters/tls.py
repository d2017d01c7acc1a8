"""Client TLS for SMTP and IMAP: the system's trust plus an optional private CA, always verified.

``smtp.ca_file`` / ``imap.ca_file`` add a PEM bundle to the system's trust for that one
connection; ``tls_server_name`` is the name checked on the certificate when ``host`` is an
IP address. There is no switch that turns verification off.
"""

from __future__ import annotations

import ssl
from typing import Any

from worker.errors import ConfigError


class _NamedContext(ssl.SSLContext):
    """A context that checks one fixed name, whatever host the library connects to: for
    libraries (imaplib) that pass ``host`` as the server name with no way to change it."""

    expected_name = ""

    def wrap_socket(self, sock: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["server_hostname"] = self.expected_name
        return super().wrap_socket(sock, *args, **kwargs)


def client_context(ca_file: str = "", *, key: str = "ca_file",
                   server_name: str = "") -> ssl.SSLContext:
    """A verifying context (hostname checked, TLS 1.2+) trusting the system's CAs and
    ``ca_file``; with ``server_name`` the certificate is checked against that name instead
    of the host connected to. A file that is not a PEM bundle is a ConfigError naming ``key``."""
    if server_name:
        named = _NamedContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies and checks the name
        named.expected_name = server_name
        named.load_default_certs()
        context: ssl.SSLContext = named
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_file:
        try:
            context.load_verify_locations(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(key, f"cannot load {ca_file} as a PEM bundle: "
                              f"{exc.strerror or exc}") from None
    return context


def server_name(host: str, tls_server_name: str = "") -> str:
    """The name to send (SNI) and verify: ``tls_server_name`` when set, else ``host``."""
    return tls_server_name or host
