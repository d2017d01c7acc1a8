"""Is this a delivery failure notice, and is the address dead (hard), busy (soft) or refused
for a reason on our side (policy)?

Detection weighs independent signs. A ``delivery-status`` report or ``X-Failed-Recipients``
is enough on its own; a MAILER-DAEMON/postmaster sender, a bounce subject or the sentences
of delivery notices need one more sign (an empty Return-Path, "user unknown"-style words, a
status code, another of the three). So an auto-reply with an empty Return-Path stays an
auto-reply, and a person's reply that quotes a bounce is read by its new text only.
The subclass comes from the reason the notice gives (see :mod:`worker.domain.bounce_phrases`),
read per recipient, with the RFC 3463 status code as tie-breaker: 5.1.x hard, 4.x.x and
delays soft, 5.7.x policy. A delay warning is never hard.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from worker.domain import dsn
from worker.domain.bounce_phrases import (
    BOUNCE_BODY,
    BOUNCE_SUBJECT,
    DAEMON_NAME,
    DAEMON_SENDER,
    DELAY,
    HARD_WORDS,
    SOFT_WORDS,
)
from worker.domain.bounce_subclass import judge
from worker.domain.dsn import DeliveryReport
from worker.domain.inbound_parse import ParsedMessage
from worker.domain.phrases import FORWARD_PREFIX, fold_flat

_UNQUOTE = re.compile(r"(?m)^[ \t]*(> ?)+")


@dataclass(frozen=True)
class BounceVerdict:
    """What :func:`read_bounce` found: a bounce with its subclass, or a success report."""

    success: bool
    subclass: str | None
    reason: str


def is_daemon(msg: ParsedMessage) -> bool:
    """Sent by a mail system (MAILER-DAEMON, postmaster, "Mail Delivery System", empty From)."""
    if msg.from_addr:
        if DAEMON_SENDER.match(msg.from_addr.split("@")[0]):
            return True
    elif "from" in msg.headers and msg.headers["from"].strip() in ("", "<>"):
        return True
    name = fold_flat(msg.from_name or "")
    return bool(name and DAEMON_NAME.search(name))


def _empty_return_path(msg: ParsedMessage) -> bool:
    rp = msg.headers.get("return-path")
    if rp is None:
        return False
    rp = rp.strip().lower()
    return rp in ("", "<>") or "mailer-daemon" in rp


def read_bounce(msg: ParsedMessage) -> BounceVerdict | None:
    """A verdict when ``msg`` is a delivery report (failure, delay or success); else None."""
    reports = msg.reports
    failed = [r for r in reports if dsn.is_failure(r)]
    delayed = [r for r in reports if dsn.is_delay(r)]
    is_report = msg.report_type in ("delivery-status", "global-delivery-status")
    successful = all(dsn.is_success(r) for r in reports)
    if is_report and reports and not failed and not delayed and successful:
        first = reports[0]
        return BounceVerdict(True, None, f"delivery report: Action: {first.action or '-'}"
                             + (f" (Status: {first.status})" if first.status else ""))

    daemon = is_daemon(msg)
    subject = fold_flat(msg.subject)
    text = msg.new_text if msg.quote_marker and not daemon and not is_report else msg.text
    forward = FORWARD_PREFIX.match(subject)
    if forward and BOUNCE_SUBJECT.search(subject[forward.end():]):
        # Someone passed a bounce on: read the quoted notice as if it came directly.
        text = _UNQUOTE.sub("", msg.text)
        if not reports:
            reports = dsn.read_inline_reports(text)
            failed = [r for r in reports if dsn.is_failure(r)]
            delayed = [r for r in reports if dsn.is_delay(r)]
    notice = dsn.notification_text(text)
    flat = fold_flat(notice[:8000])
    signs: list[str] = []
    score = 0
    if is_report and (failed or delayed or not reports):
        score += 3
        signs.append("delivery-status report")
    if msg.headers.get("x-failed-recipients"):
        score += 3
        signs.append("X-Failed-Recipients")
    if daemon:
        score += 2
        signs.append(f"sender {msg.from_addr or msg.from_name or '<>'}")
    if BOUNCE_SUBJECT.search(subject):
        score += 2
        signs.append("bounce subject")
    body = BOUNCE_BODY.search(flat)
    if body:
        score += 2
        signs.append(f"text '{body.group(0)}'")
    if not is_report and (failed or delayed):
        score += 1
    if _empty_return_path(msg):
        score += 1
    if HARD_WORDS.search(flat) or SOFT_WORDS.search(flat):
        score += 1
    if msg.status and dsn.codes_in(notice):
        score += 1
    if score < 3:
        return None
    subclass, why = _subclass(msg, failed or delayed or list(reports), flat)
    return BounceVerdict(False, subclass, f"{why} [{', '.join(signs[:2]) or 'bounce text'}]")


def _subclass(msg: ParsedMessage, reports: list[DeliveryReport], flat: str) -> tuple[str, str]:
    delayed_text = bool(DELAY.search(flat)) and not any(dsn.is_failure(r) for r in reports)
    if not reports:
        recipients = list(msg.final_recipients)
        if len(recipients) >= 2:
            reports = [DeliveryReport(recipient=a) for a in recipients[:10]]
        else:
            # One recipient, no report: the whole notice is the diagnostic.
            reports = [DeliveryReport(status=msg.status)]
    recipients = [r.recipient for r in reports if r.recipient]
    verdicts = []
    for r in reports[:20]:
        delayed = (r.action or "").startswith("delay") or (not r.action and delayed_text)
        diagnostic = fold_flat(r.diagnostic or "") or _segment(flat, r.recipient, recipients)
        status = r.status
        if status is None and len(recipients) >= 2:
            codes = dsn.codes_in(diagnostic)
            status = codes[0] if codes else None
        verdicts.append(judge(status, diagnostic, flat, delayed, r.action))
    for wanted in ("hard", "policy", "soft"):
        for sub, why in verdicts:
            if sub == wanted:
                return sub, why
    return verdicts[0]


def _segment(flat: str, recipient: str | None, recipients: list[str]) -> str:
    """The part of a notice that talks about ``recipient``: up to the next recipient named."""
    if not recipient:
        return ""
    start = flat.find(recipient)
    if start < 0:
        return ""
    ends = [flat.find(o, start + len(recipient)) for o in recipients if o != recipient]
    end = min([e for e in ends if e > 0] + [start + 600])
    return flat[start:end]
