"""Client TLS for SMTP and IMAP: the system's trust plus an optional private CA, always verified.

``smtp.ca_file`` / ``imap.ca_file`` add a PEM bundle to the system's trust for that one
connection; ``tls_server_name`` is the name checked on the certificate when ``host`` is an
IP address. There is no switch that turns verification off.
"""

from __future__ import annotations

import ssl

from worker.errors import ConfigError


def client_context(ca_file: str = "", *, key: str = "ca_file") -> ssl.SSLContext:
    """A verifying context (hostname checked, TLS 1.2+) trusting the system's CAs and
    ``ca_file``. A file that is not a PEM bundle is a ConfigError naming ``key``."""
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
