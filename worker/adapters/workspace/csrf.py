"""CSRF tokens: an HMAC of the browser's session (or, before sign-in, of a random
pre-session cookie) under the worker's secret key. Nothing stored; a POST whose form
lacks the token of the cookie it came with gets 403."""

from __future__ import annotations

import hashlib
import hmac


def token_for(secret_key: bytes, key: str) -> str:
    """The CSRF token of a session (or pre-session) cookie value."""
    return hmac.new(secret_key, b"workspace-csrf:" + key.encode(), hashlib.sha256).hexdigest()


def valid(secret_key: bytes, key: str | None, given: str | None) -> bool:
    """Whether ``given`` is the token of ``key`` (constant time)."""
    if not key or not given:
        return False
    return hmac.compare_digest(token_for(secret_key, key), given)
