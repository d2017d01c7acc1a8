"""Signed tokens: unsubscribe links (HMAC over the lead and campaign) and Message-IDs."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{2,200}\.[A-Za-z0-9_-]{16}$")
_SIG_BYTES = 12
#: Only for `preview` and `check`, which must work without secrets; never used to send.
PREVIEW_KEY = b"nurture-preview-only"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(key: bytes, payload: bytes) -> str:
    return _b64(hmac.new(key, b"unsubscribe\x00" + payload, hashlib.sha256).digest()[:_SIG_BYTES])


def make_unsubscribe_token(key: bytes, lead_id: int, campaign: str) -> str:
    """``<payload>.<signature>``, URL- and address-safe; does not expire."""
    payload = f"{lead_id}:{campaign}".encode()
    return f"{_b64(payload)}.{_sign(key, payload)}"


def read_unsubscribe_token(key: bytes, token: str) -> tuple[int, str] | None:
    """(lead id, campaign) if the token is genuine, else None (forged, altered, truncated)."""
    if not isinstance(token, str) or not _TOKEN_RE.match(token):
        return None
    body, _, signature = token.partition(".")
    try:
        payload = _unb64(body)
    except (ValueError, TypeError):
        return None
    if _b64(payload) != body:
        return None  # not the canonical spelling (spare bits of the last character)
    if not hmac.compare_digest(_sign(key, payload), signature):
        return None
    lead, _, campaign = payload.decode("utf-8", "replace").partition(":")
    if not lead.isdigit() or not campaign:
        return None
    return int(lead), campaign


def unsubscribe_mailto(token: str, domain: str) -> str:
    """``mailto:unsubscribe+TOKEN@domain`` when the address stays within 64 characters of
    local part, else the token travels in the subject."""
    local = f"unsubscribe+{token}"
    if len(local) <= 64:
        return f"mailto:{local}@{domain}?subject=unsubscribe"
    return f"mailto:unsubscribe@{domain}?subject=unsubscribe%20{token}"


def message_id_key(secret_key: bytes) -> bytes:
    """The key that signs Message-IDs, derived from the secret key (never the key itself)."""
    return hmac.new(secret_key, b"nurture message-id v1", hashlib.sha256).digest()


def message_id(enrollment_id: int, step_id: str, domain: str, install: str = "",
               key: bytes = PREVIEW_KEY) -> str:
    """The Message-ID of one step of one enrolment: the same on every attempt, so a mail that
    is handed over twice (a crash between send and record) carries the same id. ``install``
    tells installations sharing a domain apart. The last part is a MAC (80 bits, keyed by
    ``message_id_key``) over the rest: knowing one's own Message-ID does not give a
    neighbour's, so naming one in In-Reply-To proves the sender received that mail."""
    tag = f".{install}" if install else ""
    payload = f"{enrollment_id}\0{step_id}\0{install}".encode()
    mac = hmac.new(message_id_key(key), payload, hashlib.sha256).digest()[:10]
    # lower-case base32: no character that a mail system might fold or escape
    signature = base64.b32encode(mac).decode("ascii").lower()
    return f"nurture.{enrollment_id}.{step_id}{tag}.{signature}@{domain}"
