"""Build the bytes of an outgoing mail directly: multipart text and HTML, attachments.

The stdlib ``EmailMessage`` and its generator cost about a millisecond per mail; this writes
the same structure with C-speed encoders (``binascii``). Header values are cleaned so that no
lead data can add a header: CR, LF and NUL become spaces, non-ASCII text is RFC 2047-encoded.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr, parseaddr
from functools import lru_cache

import idna

CRLF = "\r\n"
#: RFC 2047 section 2: an encoded word is at most 75 characters. ``Header`` keeps each line
#: under ``maxlinelen`` counting the blank that folds it, so 76 would allow words of 76.
_WORD_LINE = 75
#: Headers whose values are addresses: never RFC 2047-encoded as a whole (the display name
#: is encoded by ``address``); a non-ASCII local part stays UTF-8 (RFC 6532, sent with
#: SMTPUTF8; the SMTP adapter refuses it, with its reason, where the server has no SMTPUTF8).
_ADDRESS_HEADERS = frozenset({"from", "to", "cc", "reply-to", "sender"})
_CTL_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\u2028\u2029]+")
_MAX_ASCII_HEADER = 900
# Inside an already-encoded header value only folding (CRLF followed by a blank) may remain.
_BAD_BREAK_RE = re.compile(r"\r\n(?![ \t])|\r(?!\n)|(?<!\r)\n|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    encoded: bytes  # base64 lines with CRLF, prepared once


def prepare_attachment(filename: str, data: bytes, content_type: str) -> Attachment:
    """Encode an attachment once, when the campaign loads."""
    raw = base64.encodebytes(data).replace(b"\n", b"\r\n")
    return Attachment(clean(filename), content_type, raw)


def clean(value: str) -> str:
    """One line, no control characters: nothing a lead writes can start a new header."""
    return " ".join(_CTL_RE.sub(" ", value).split())


def encode_text(value: str) -> str:
    """A header's unstructured text, RFC 2047-encoded (and folded) when it is not short plain
    ASCII, or when it contains ``=?`` (a mail client would decode it as an encoded word)."""
    value = clean(value)
    if value.isascii() and len(value) < _MAX_ASCII_HEADER and "=?" not in value:
        return value
    return Header(value, "utf-8", maxlinelen=_WORD_LINE).encode(linesep=CRLF)


def address(name: str | None, email: str) -> str:
    """A mailbox header value: the display name quoted, or encoded and folded when it is
    long, not ASCII or looks like an encoded word; the address checked, its domain in IDNA
    (``xn--``) form so that only a non-ASCII local part needs SMTPUTF8."""
    email = _ascii_domain(clean(email))
    if any(c in email for c in ' <>,;"()'):
        raise ValueError(f"not a single address: {email!r}")
    name = clean(name or "")
    if not name:
        return email
    if name.isascii() and len(name) < 200 and "=?" not in name and email.isascii():
        return formataddr((name, email))
    if name.isascii() and len(name) < 200 and "=?" not in name:
        # formataddr refuses a non-ASCII address: quote the name the same way by hand.
        return f"{formataddr((name, 'x@x')).rpartition(' <')[0]} <{email}>"
    return f"{Header(name, 'utf-8', maxlinelen=_WORD_LINE).encode(linesep=CRLF)} <{email}>"


def _ascii_domain(email: str) -> str:
    local, at, domain = email.rpartition("@")
    if not at or domain.isascii():
        return email
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except (idna.IDNAError, UnicodeError):
        return email


@lru_cache(maxsize=1024)
def split_address(value: str) -> tuple[str, str]:
    """``"Dana at Acme <dana@acme.example>"`` -> (name, address)."""
    name, addr = parseaddr(value)
    return name, addr


def _encode_body(text: str) -> tuple[str, bytes]:
    """(Content-Transfer-Encoding, body bytes with CRLF line ends)."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", CRLF)
    # max(map(len)) runs in C: a generator over a 20 KB HTML part's lines cost 10% of a mail.
    if normalised.isascii() and max(map(len, normalised.split(CRLF))) < 990:
        return "7bit", normalised.encode("ascii")
    return "quoted-printable", _quoted_printable(normalised)


_QP_LINES: dict[str, bytes] = {}
_QP_CACHE_SIZE = 8192


def _quoted_printable(normalised: str) -> bytes:
    """``b2a_qp`` of CRLF text, a line at a time, each line's encoding remembered: a campaign's
    mails share most lines (the layout, its inlined CSS, the footer), and encoding them for
    every mail was the largest per-mail cost once a non-ASCII character was in the layout.
    b2a_qp keeps no state across a line end, so the bytes are the same as encoding the whole."""
    lines = normalised.split(CRLF)
    if len(lines) == 1:
        return binascii.b2a_qp(normalised.encode("utf-8"), istext=True)
    out: list[bytes] = []
    for line in lines[:-1]:
        encoded = _QP_LINES.get(line)
        if encoded is None:
            encoded = binascii.b2a_qp((line + CRLF).encode("utf-8"), istext=True)
            if len(_QP_LINES) >= _QP_CACHE_SIZE:
                _QP_LINES.clear()  # a bound on memory; the next mails fill it again
            _QP_LINES[line] = encoded
        out.append(encoded)
    if lines[-1]:
        # The unterminated tail, after a line end so that soft breaks are CRLF as in the whole.
        out.append(binascii.b2a_qp((CRLF + lines[-1]).encode("utf-8"), istext=True)[2:])
    return b"".join(out)


def _boundary() -> str:
    # A boundary starting with "=_" cannot appear in quoted-printable or base64 content.
    return "=_nurture_" + os.urandom(12).hex()


def build_message(headers: list[tuple[str, str]], text: str, html: str | None,
                  attachments: tuple[Attachment, ...] = ()) -> bytes:
    """The whole message as bytes with CRLF line ends. ``headers`` values must already be
    encoded (use ``encode_text`` and ``address``); they are cleaned once more here."""
    out: list[bytes] = []
    for name, value in headers:
        if not (value.isascii() and value.isprintable()):  # fast path for clean values
            value = _BAD_BREAK_RE.sub(" ", value)
            if not value.isascii() and name.lower() not in _ADDRESS_HEADERS:
                value = encode_text(value)
        out.append(f"{name}: {value}".encode() + b"\r\n")
    out.append(b"MIME-Version: 1.0\r\n")
    text_cte, text_body = _encode_body(text)
    parts: list[tuple[str, str, bytes]] = [("text/plain; charset=utf-8", text_cte, text_body)]
    if html is not None:
        html_cte, html_body = _encode_body(html)
        parts.append(("text/html; charset=utf-8", html_cte, html_body))
    if len(parts) == 1 and not attachments:
        ctype, cte, body = parts[0]
        out.append(f"Content-Type: {ctype}\r\nContent-Transfer-Encoding: {cte}\r\n\r\n".encode())
        out.append(body)
        return b"".join(out)
    alt = _boundary()
    alternative = [f"Content-Type: multipart/alternative; boundary=\"{alt}\"\r\n".encode()]
    body_parts: list[bytes] = []
    for ctype, cte, body in parts:
        body_parts.append(f"\r\n--{alt}\r\nContent-Type: {ctype}\r\n"
                          f"Content-Transfer-Encoding: {cte}\r\n\r\n".encode())
        body_parts.append(body)
    body_parts.append(f"\r\n--{alt}--\r\n".encode())
    if not attachments:
        out.extend(alternative)
        out.append(b"\r\n")
        out.extend(body_parts)
        return b"".join(out)
    mixed = _boundary()
    out.append(f"Content-Type: multipart/mixed; boundary=\"{mixed}\"\r\n\r\n".encode())
    out.append(f"--{mixed}\r\n".encode())
    out.extend(alternative)
    out.append(b"\r\n")
    out.extend(body_parts)
    for att in attachments:
        disposition = Header(att.filename, "utf-8").encode() if not att.filename.isascii() \
            else att.filename.replace('"', "")
        out.append(f"\r\n--{mixed}\r\nContent-Type: {att.content_type}\r\n"
                   f"Content-Transfer-Encoding: base64\r\n"
                   f"Content-Disposition: attachment; filename=\"{disposition}\"\r\n\r\n".encode())
        out.append(att.encoded)
    out.append(f"\r\n--{mixed}--\r\n".encode())
    return b"".join(out)


def date_header(at: datetime) -> str:
    return _date_header(at.replace(microsecond=0))


@lru_cache(maxsize=4)
def _date_header(at: datetime) -> str:
    return format_datetime(at)
