"""SASL initial responses for bearer tokens: XOAUTH2 (Google, Microsoft) and OAUTHBEARER (RFC 7628).

Pure: the strings are what goes after ``AUTH XOAUTH2`` (SMTP) or ``AUTHENTICATE`` (IMAP)
before base64. The token never appears in anything this module raises.
"""

from __future__ import annotations

import base64

_CTRL_A = "\x01"


def _check(user: str, token: str) -> None:
    # A control character would let a value end its field early and forge another one.
    for name, value in (("user", user), ("access token", token)):
        if not value:
            raise ValueError(f"SASL bearer: {name} is empty")
        if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
            raise ValueError(f"SASL bearer: {name} contains a control character")


def xoauth2(user: str, token: str) -> str:
    """The XOAUTH2 client response: ``user=U^Aauth=Bearer T^A^A``."""
    _check(user, token)
    return f"user={user}{_CTRL_A}auth=Bearer {token}{_CTRL_A}{_CTRL_A}"


def oauthbearer(user: str, token: str, host: str = "", port: int = 0) -> str:
    """The OAUTHBEARER (RFC 7628) client response with a GS2 header naming ``user``.

    ``host``/``port`` are optional key-value pairs some servers log or check.
    """
    _check(user, token)
    # RFC 5801: in the authzid, "," and "=" are escaped as =2C and =3D ("=" first).
    authzid = user.replace("=", "=3D").replace(",", "=2C")
    pairs = []
    if host:
        pairs.append(f"host={host}")
    if port:
        pairs.append(f"port={port}")
    pairs.append(f"auth=Bearer {token}")
    return f"n,a={authzid},{_CTRL_A}" + _CTRL_A.join(pairs) + _CTRL_A + _CTRL_A


def encode(response: str) -> str:
    """Base64 of a client response, as it travels on the wire."""
    return base64.b64encode(response.encode("utf-8")).decode("ascii")


def server_error(challenge_b64: str) -> str:
    """The JSON error a server sends in its 334/+ challenge after a refused token, decoded
    (empty when it is not base64)."""
    try:
        return base64.b64decode(challenge_b64, validate=True).decode("utf-8", "replace")
    except ValueError:
        return ""
