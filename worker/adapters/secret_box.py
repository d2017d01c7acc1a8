"""Encrypted storage of secrets at rest (refresh tokens): AES-256-GCM, keys from NURTURE_SECRET_KEY.

Each ``context`` (for example ``oauth2-refresh:mailbox=sales``) gets its own key, derived
with HKDF-SHA256 from the secret key, and is bound to the ciphertext as associated data: a
token sealed for one mailbox does not open as another's. The stored form is text:
``v1.`` + base64url(12-byte nonce + ciphertext + tag). Built on ``cryptography``.
"""

from __future__ import annotations

import base64
import binascii
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from worker.errors import ConfigError, SecretKeyError

VERSION = "v1."
_SALT = b"nurture/secret-box/v1"
_NONCE_BYTES = 12
MIN_KEY_CHARS = 16


class SecretBox:
    """Seal and open short secrets with keys derived from ``secret_key``."""

    def __init__(self, secret_key: str) -> None:
        if len(secret_key) < MIN_KEY_CHARS:
            raise ConfigError("NURTURE_SECRET_KEY", f"must be set, at least {MIN_KEY_CHARS} "
                              "characters, to encrypt stored tokens")
        self._master = secret_key.encode("utf-8")

    def _key(self, context: str) -> AESGCM:
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT,
                    info=b"nurture:" + context.encode("utf-8"))
        return AESGCM(hkdf.derive(self._master))

    def seal(self, plaintext: str, context: str) -> str:
        """Encrypt ``plaintext`` for ``context``; a fresh random nonce each time."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = self._key(context).encrypt(nonce, plaintext.encode("utf-8"),
                                            context.encode("utf-8"))
        return VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def open(self, stored: str, context: str) -> str:
        """Decrypt what ``seal`` made for the same context; SecretKeyError otherwise."""
        if not stored.startswith(VERSION):
            raise SecretKeyError(f"{context}: not a sealed secret (unknown format)")
        try:
            blob = base64.urlsafe_b64decode(stored[len(VERSION):].encode("ascii"))
        except (binascii.Error, ValueError, UnicodeEncodeError):
            raise SecretKeyError(f"{context}: sealed secret is damaged") from None
        if len(blob) <= _NONCE_BYTES:
            raise SecretKeyError(f"{context}: sealed secret is damaged")
        try:
            plain = self._key(context).decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:],
                                               context.encode("utf-8"))
        except InvalidTag:
            raise SecretKeyError(
                f"{context}: cannot decrypt: NURTURE_SECRET_KEY differs from the one it was "
                "stored with, or the data was changed; sign in again") from None
        return plain.decode("utf-8")


def refresh_token_context(mailbox: str) -> str:
    """The sealing context of a mailbox's refresh token."""
    return f"oauth2-refresh:mailbox={mailbox}"
