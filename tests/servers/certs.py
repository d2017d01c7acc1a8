"""A self-signed certificate for 127.0.0.1 / localhost, for the TLS tests."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
from pathlib import Path


def make_self_signed(directory: Path, name: str = "server") -> tuple[Path, Path]:
    """Write ``name.crt`` and ``name.key`` into ``directory``; return their paths.

    An EC key keeps generation instant; SANs cover 127.0.0.1 and localhost so that clients
    can verify the hostname against the certificate (used as its own CA). Uses the
    ``cryptography`` package, else the ``openssl`` command.
    """
    cert_path = directory / f"{name}.crt"
    key_path = directory / f"{name}.key"
    try:
        _with_cryptography(cert_path, key_path)
    except ImportError:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
             "-nodes", "-days", "3650", "-subj", "/CN=localhost",
             "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-keyout", str(key_path), "-out", str(cert_path)],
            check=True, capture_output=True)
    key_path.chmod(0o644)  # the server may read it after dropping privileges
    return cert_path, key_path


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))


def client_context(cafile: Path) -> ssl.SSLContext:
    """A verifying client context that trusts only ``cafile``."""
    return ssl.create_default_context(cafile=str(cafile))
