"""Walking the MIME tree of an inbound message without decoding what classification ignores.

Text parts are decoded (capped), HTML is kept for conversion, report parts
(``message/delivery-status``, ``message/feedback-report``, ``message/disposition-notification``)
are kept as field text, returned messages (``message/rfc822``, ``text/rfc822-headers``) are kept
apart so that their words never count as ours, and attachments are only named. Helpers here
never raise on malformed input: a broken part reads as empty text.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import quopri
import re
from dataclasses import dataclass, field
from email.header import decode_header
from email.message import Message
from email.parser import BytesParser, HeaderParser
from email.policy import compat32

#: Characters of body text kept for analysis; classification never needs more.
MAX_TEXT_CHARS = 100_000
#: Encoded characters of one part decoded at most (a text part larger than this is cut).
MAX_PART_CHARS = 1_000_000
#: Characters of one header value read at most: a 1 MB Subject or a 200 KB To is cut here, so
#: every header costs the same bounded time (no address, subject or id is longer than this).
MAX_HEADER_CHARS = 8192
#: MIME parts visited at most; mail bombs with thousands of parts stop here.
MAX_PARTS = 200
#: Parts that carry another message: a bounce's returned original, or a forwarded mail.
_RETURNED = ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers")


@dataclass
class Walk:
    """What walking the MIME tree found (mutable while walking)."""

    plain: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attached_text: list[str] = field(default_factory=list)
    status_text: list[str] = field(default_factory=list)
    report_fields: list[str] = field(default_factory=list)
    returned: list[Message] = field(default_factory=list)
    content_types: list[str] = field(default_factory=list)
    attachment_names: list[str] = field(default_factory=list)
    report_type: str | None = None
    size: int = 0


def walk_tree(root: Message, walk: Walk) -> None:
    """Collect text, reports and returned messages into ``walk``: depth-first, in document order."""
    stack: list[tuple[Message, bool]] = [(root, False)]
    seen = 0
    while stack and seen < MAX_PARTS:
        part, inside_returned = stack.pop()
        seen += 1
        ctype = _content_type(part)
        if ctype == "multipart/report" and not inside_returned and walk.report_type is None:
            walk.report_type = str(part.get_param("report-type") or "").lower() or "unknown"
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            if not inside_returned:
                walk.status_text.append(_fields_text(part))
                walk.report_type = walk.report_type or "delivery-status"
            continue
        if ctype in ("message/feedback-report", "message/disposition-notification"):
            if not inside_returned:
                walk.report_fields.append(_fields_text(part))
                walk.report_type = walk.report_type or ctype.split("/")[1]
            continue
        if ctype in _RETURNED:
            if not inside_returned:
                walk.content_types.append(ctype)
                sub = _sub_message(part)
                if sub is not None:
                    walk.returned.append(sub)
            continue
        payload = part.get_payload()
        if isinstance(payload, str) and ctype.startswith("multipart/"):
            payload = _recover_multipart(payload)
        if isinstance(payload, list):
            children = [p for p in payload if isinstance(p, Message)]
            epilogue = part.epilogue or ""
            if "content-type:" in epilogue[:20_000].lower():
                # A nested multipart that reused its parent's boundary leaves parts out here.
                extra = _recover_multipart(epilogue)
                if isinstance(extra, list):
                    children += extra
            stack.extend((c, inside_returned) for c in reversed(children))
            continue
        if inside_returned:
            continue
        _leaf(part, ctype, walk)


def _recover_multipart(payload: str) -> list[Message] | str:
    """Children of a multipart whose boundary parameter was lost (a badly folded header)."""
    m = re.search(r"(?m)^--([^\s]{1,200})[ \t]*\r?$", payload[:20_000])
    if not m:
        return payload
    boundary = m.group(1)
    head = f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
    raw = (head + payload).encode("utf-8", "surrogateescape")
    fixed = BytesParser(policy=compat32).parsebytes(raw)
    children = fixed.get_payload()
    if not isinstance(children, list):
        return payload
    return [c for c in children if isinstance(c, Message)]


def _leaf(part: Message, ctype: str, walk: Walk) -> None:
    walk.content_types.append(ctype)
    disposition = str(part.get("content-disposition", "")).lower()
    name = _filename(part)
    if name:
        walk.attachment_names.append(name)
    attached = disposition.startswith("attachment") or bool(name and not ctype.startswith("text/"))
    if walk.size > MAX_TEXT_CHARS * 2:
        return
    if ctype in ("text/plain", "text/enriched"):
        text = part_text(part)
        walk.size += len(text)
        (walk.attached_text if attached else walk.plain).append(text)
    elif ctype == "text/html" and not attached:
        html = part_text(part)
        walk.size += len(html) // 4
        walk.html.append(html)


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:  # noqa: BLE001 - a broken Content-Type reads as plain text (RFC 2045)
        return "text/plain"


def _filename(part: Message) -> str:
    try:
        name = part.get_filename()
    except Exception:  # noqa: BLE001
        return ""
    return header_text(name) if name else ""


def _sub_message(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return next((p for p in payload if isinstance(p, Message)), None)
    text = part_text(part)
    return HeaderParser(policy=compat32).parsestr(text[:200_000]) if text else None


def _fields_text(part: Message) -> str:
    """The text of a report part: header-like blocks the stdlib parsed, or its raw body."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks = []
        for block in payload:
            if isinstance(block, Message):
                lines = [f"{k}: {header_text(v)}" for k, v in block.items()]
                body = block.get_payload()
                if isinstance(body, str) and body.strip():
                    lines.append(body)
                blocks.append("\n".join(lines))
        return "\n\n".join(blocks)
    return part_text(part)


def part_text(part: Message) -> str:
    """The decoded text of a leaf part, capped at :data:`MAX_PART_CHARS` encoded characters."""
    # The raw payload: get_payload() would decode 8-bit bytes with the declared charset and
    # "replace" (losing mislabelled UTF-8), and get_payload(decode=True) cannot be capped.
    payload = getattr(part, "_payload", None)
    if not isinstance(payload, str):
        return ""
    payload = payload[:MAX_PART_CHARS]
    cte = str(part.get("content-transfer-encoding", "")).strip().lower()
    data = payload.encode("utf-8", "surrogateescape")
    if cte == "base64":
        cleaned = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
        cleaned = cleaned[: len(cleaned) - len(cleaned) % 4]
        try:
            data = base64.b64decode(cleaned)
        except (binascii.Error, ValueError):
            data = b""
    elif cte == "quoted-printable":
        data = quopri.decodestring(data)
    try:
        charset = part.get_content_charset()
    except Exception:  # noqa: BLE001
        charset = None
    return decode_bytes(data, charset)


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Decode with the declared charset, then UTF-8, then cp1252, then Latin-1 (never fails)."""
    for cs in (charset, "utf-8", "cp1252"):
        # Unknown or lying charsets (x-unknown, ...) fall through to the next guess.
        with contextlib.suppress(Exception):
            if cs:
                return data.decode(cs)
    return data.decode("latin-1")


#: C0 and C1 control characters, DEL included; tab, line feed and carriage return are kept by
#: :func:`printable` for body text. An ESC in a subject would reach the terminal of whoever
#: runs ``lead show`` (issue 12).
_CONTROLS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CONTROLS_ALL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str, *, keep_lines: bool = True) -> str:
    """``text`` without C0/C1 control characters, safe to print to a terminal.

    With ``keep_lines`` tab and line breaks stay (body text); without, they become spaces
    (a subject or a name on one line).
    """
    if keep_lines:
        return _CONTROLS.sub("", text)
    return _CONTROLS.sub("", text.replace("\t", " ").replace("\r", " ").replace("\n", " "))


def header_text(value: object) -> str:
    """A header as readable text: RFC 2047 words decoded, 8-bit bytes guessed, unfolded,
    control characters (ESC, NUL, C1) removed.

    Only the first :data:`MAX_HEADER_CHARS` characters are read.
    """
    if value is None:
        return ""
    text = str(value)[:MAX_HEADER_CHARS]
    if any("\udc80" <= ch <= "\udcff" for ch in text):
        text = decode_bytes(text.encode("utf-8", "surrogateescape"), None)
    elif "\x1b$" in text:  # raw ISO-2022-JP, as Japanese mailers send it
        text = decode_bytes(text.encode("ascii", "replace"), "iso-2022-jp")
    if "=?" in text:
        # Malformed encoded words stay as they are.
        with contextlib.suppress(Exception):
            text = "".join(decode_bytes(chunk, charset) if isinstance(chunk, bytes) else chunk
                           for chunk, charset in decode_header(text))
    return " ".join(_CONTROLS_ALL.sub(" ", text).split())
