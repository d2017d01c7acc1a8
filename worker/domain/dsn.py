"""Reading delivery reports: RFC 3464 per-recipient fields, status codes, failed addresses.

Works on the text of a ``message/delivery-status`` part, and on bounces that carry the same
fields inline in their body (common with broken or hand-rolled DSNs). Enhanced status codes
follow RFC 3463 (``class.subject.detail``); plain SMTP reply codes (``550``) are kept as the
diagnostic text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FIELD = re.compile(r"^([A-Za-z][A-Za-z0-9-]{1,40})[ \t]*:[ \t]*(.*)$")
_DSN_FIELDS = frozenset({
    "final-recipient", "original-recipient", "action", "status", "diagnostic-code", "remote-mta",
    "last-attempt-date", "will-retry-until", "x-actual-recipient", "x-supplementary-info",
})
_RECIPIENT_FIELDS = ("final-recipient", "original-recipient", "x-actual-recipient")
#: An enhanced status code not embedded in an IP address or version number.
STATUS_CODE = re.compile(r"(?<![\w.])([245])\.(\d{1,3})\.(\d{1,3})(?!\.?\d)")
_DIAGNOSTIC_TYPE = re.compile(r"^\s*(smtp|x-[\w-]+|unknown)\s*;\s*", re.IGNORECASE)
_REPLY_LINE = re.compile(r"(?<![\w.])[45]\d\d[ -]")
#: An address in free text; starts only where a local-part run starts (linear time, see
#: worker.domain.inbound_parse).
_ADDR = re.compile(r"(?<![\w.!#$%&'*+/=?^`{|}~-])[\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+")
_ADDR_LINE = re.compile(
    r"^\s*[<\"']?([\w.!#$%&'*+/=?^`{|}~-]+@[\w-]+(?:\.[\w-]+)+)[>\"']?\s*(:|\(|\.\.\.|$)"
)
#: Markers after which a plain-text bounce quotes the returned message.
RETURNED_MARKERS = re.compile(
    r"(?im)^[ \t>|-]*("
    r"-+ ?(this is a copy of|below this line is a copy of|original message|the original message"
    r"|returned message)|(original message follows|the original message was"
    r"|a copy of the original message|headers of the original message)"
    r"|-+ ?(original message|message original|ursprungliche nachricht|mensaje original)"
    r"|-+ ?(start of returned message|returned mail follows|undelivered message)"
    r")"
)


@dataclass(frozen=True)
class DeliveryReport:
    """One per-recipient block of a delivery status notification (RFC 3464)."""

    recipient: str | None = None
    action: str | None = None
    status: str | None = None
    diagnostic: str | None = None


def field_blocks(text: str, *, only_dsn: bool = False) -> list[dict[str, str]]:
    """Split ``Name: value`` text into blocks at blank lines, unfolding continuation lines."""
    blocks: list[dict[str, str]] = []
    cur: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if cur:
                blocks.append(cur)
            cur, last = {}, None
            continue
        if line[:1] in (" ", "\t") and last:
            cur[last] = (cur[last] + " " + line.strip()).strip()
            continue
        m = _FIELD.match(line)
        if not m:
            last = None
            continue
        name = m.group(1).lower()
        if only_dsn and name not in _DSN_FIELDS:
            last = None
            continue
        if name in cur and name in ("final-recipient", "action", "status"):
            # A new recipient without the blank line in between (broken reports).
            blocks.append(cur)
            cur = {}
        cur.setdefault(name, m.group(2).strip())
        last = name
    if cur:
        blocks.append(cur)
    return blocks


def field_map(text: str) -> dict[str, str]:
    """All ``Name: value`` fields of a report part, first occurrence wins (lowercase names)."""
    out: dict[str, str] = {}
    for block in field_blocks(text):
        for k, v in block.items():
            out.setdefault(k, v)
    return out


def status_of(value: str | None) -> str | None:
    """The enhanced status code in a Status value (``5.1.1 (bad address)`` -> ``5.1.1``)."""
    if not value:
        return None
    m = STATUS_CODE.search(value)
    if m:
        return ".".join(m.groups())
    m = re.search(r"\b([245])\d\d\b", value)
    return f"{m.group(1)}.0.0" if m else None


def _address(value: str | None) -> str | None:
    if not value:
        return None
    m = _ADDR.search(value)
    return m.group(0).lower() if m else None


def _reports(blocks: list[dict[str, str]]) -> tuple[DeliveryReport, ...]:
    out = []
    for b in blocks:
        if not any(k in b for k in ("action", "status", "final-recipient", "diagnostic-code")):
            continue
        recipient = next((_address(b[k]) for k in _RECIPIENT_FIELDS if _address(b.get(k))), None)
        diagnostic = b.get("diagnostic-code")
        if diagnostic:
            diagnostic = _DIAGNOSTIC_TYPE.sub("", diagnostic)
        action = (b.get("action") or "").split()[:1]
        out.append(DeliveryReport(
            recipient=recipient,
            action=action[0].lower() if action else None,
            status=status_of(b.get("status")),
            diagnostic=diagnostic or None,
        ))
    return tuple(out)


def read_reports(text: str) -> tuple[DeliveryReport, ...]:
    """Per-recipient reports of a ``message/delivery-status`` part."""
    return _reports(field_blocks(text))


def read_inline_reports(text: str) -> tuple[DeliveryReport, ...]:
    """Reports written into a bounce's body text; only blocks that carry Action or Status."""
    head = text[:20_000]
    if not re.search(r"(?im)^(action|status)[ \t]*:", head):
        return ()
    blocks = [b for b in field_blocks(head, only_dsn=True) if "action" in b or "status" in b]
    return tuple(r for r in _reports(blocks) if r.action or r.status)


def is_failure(report: DeliveryReport) -> bool:
    """A report of a failed (not delayed, not delivered) delivery."""
    if report.action:
        return report.action.startswith("fail")
    return bool(report.status and report.status.startswith("5"))


def is_delay(report: DeliveryReport) -> bool:
    """A report that delivery is still being retried."""
    return bool(report.action and report.action.startswith("delay"))


def is_success(report: DeliveryReport) -> bool:
    """A report of a delivery that worked (delivered, relayed, expanded)."""
    if report.action:
        return report.action.startswith(("deliver", "relay", "expand"))
    return bool(report.status and report.status.startswith("2"))


def notification_text(text: str, limit: int = 12_000) -> str:
    """The human-readable part of a bounce, without the quoted returned message."""
    m = RETURNED_MARKERS.search(text, 0, limit)
    return text[: m.start()] if m and m.start() > 40 else text[:limit]


def codes_in(text: str) -> list[str]:
    """Enhanced status codes in free text, in order."""
    return [".".join(m.groups()) for m in STATUS_CODE.finditer(text)]


def summary(reports: tuple[DeliveryReport, ...], text: str) -> tuple[str | None, str | None]:
    """(status, diagnostic) of the most telling report, else what the bounce text says."""
    ranked = sorted(reports, key=lambda r: (not is_failure(r), not is_delay(r)))
    status = diagnostic = None
    if ranked:
        status, diagnostic = ranked[0].status, ranked[0].diagnostic
    if status is None or status.endswith(".0.0"):
        found = codes_in(diagnostic or "") or codes_in(notification_text(text, 6000))
        if found and not found[0].endswith(".0.0"):
            status = found[0]
        status = status or (found[0] if found else None)
    if diagnostic is None:
        for line in notification_text(text, 6000).splitlines():
            if _REPLY_LINE.search(line) and len(line.strip()) > 8:
                diagnostic = " ".join(line.split())[:500]
                break
    return status, diagnostic


def final_recipients(reports: tuple[DeliveryReport, ...],
                     limit: int | None = None) -> tuple[str, ...]:
    """Failed (or delayed) recipients named by the reports: the first ``limit`` of them."""
    picked = [r.recipient for r in reports if r.recipient and not is_success(r)]
    return tuple(dict.fromkeys(a for a in picked if a))[:limit]


def recipients_in_text(text: str) -> tuple[str, ...]:
    """Addresses a plain-text bounce lists on lines of their own (``<a@b>:``, ``  a@b``)."""
    found = []
    for line in notification_text(text, 8000).splitlines()[:200]:
        m = _ADDR_LINE.match(line)
        if m:
            found.append(m.group(1).lower())
    return tuple(dict.fromkeys(found))[:20]


_JSON_TYPE = re.compile(r'"notificationtype"\s*:\s*"(\w+)"', re.IGNORECASE)
_JSON_OBJECT = re.compile(r"\{[^{}]*\"emailaddress\"[^{}]*\}", re.IGNORECASE)


def _json_field(obj: str, name: str) -> str | None:
    m = re.search(rf'"{name}"\s*:\s*"((?:[^"\\]|\\.)*)"', obj, re.IGNORECASE)
    return m.group(1) if m else None


def read_json_notification(text: str) -> tuple[str | None, tuple[DeliveryReport, ...], str | None]:
    """Amazon SES-style JSON notices: (report type, per-recipient reports, feedback type)."""
    head = text[:50_000].replace('\\"', '"')  # SNS wraps the notice as an escaped JSON string
    m = _JSON_TYPE.search(head)
    if not m:
        return None, (), None
    kind = m.group(1).lower()
    if kind == "complaint":
        return "feedback-report", (), _json_field(head, "complaintFeedbackType") or "abuse"
    if kind not in ("bounce", "delivery"):
        return None, (), None
    reports = []
    for obj in _JSON_OBJECT.findall(head):
        action = _json_field(obj, "action") or ("delivered" if kind == "delivery" else "failed")
        reports.append(DeliveryReport(
            recipient=(_json_field(obj, "emailAddress") or "").lower() or None,
            action=action.lower(),
            status=status_of(_json_field(obj, "status")),
            diagnostic=_json_field(obj, "diagnosticCode"),
        ))
    if not reports:
        action = "delivered" if kind == "delivery" else "failed"
        reports.append(DeliveryReport(action=action, status=status_of(_json_field(head, "status")),
                                      diagnostic=_json_field(head, "smtpResponse")))
    return "delivery-status", tuple(reports), None
