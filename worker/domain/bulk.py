"""Bulk mail and spam that reach the reply mailbox: newsletters, phishing, test messages.

A person's reply is never judged here: a message with thread headers or a quoted original
is a reply, whatever it looks like. A mail that only carries "Re:" needs strong signs, and
a fresh mail (which may well be a lead writing to us first) needs one strong sign and one
more, or several weak ones. Strong signs are things a person's mail client does not do:
list and campaign headers (a mailing list's only on a fresh mail: a reply through a group
carries them too), no recipient, no Message-ID, a program as mailer, executable or
archive attachments, a display name that is itself another address. Mailing-list headers
on a reply are not enough (SPEC: "Mailing-list headers alone do not make a message other").
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime

from worker.domain.inbound_parse import ParsedMessage
from worker.domain.phrases import FORWARD_PREFIX, REPLY_PREFIX, fold_flat

_RISKY_ATTACHMENT = re.compile(
    r"\.(zip|rar|7z|exe|scr|js|jse|vbs|vbe|jar|bat|cmd|com|pif|iso|img|lnk|hta|wsf|ace|arj|cab"
    r"|docm|xlsm|pptm)\s*$"
)
_GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
_AUTOMATED_MAILER = re.compile(
    r"(curl|wget|python|php ?mailer|\bcdo\b|perl|java ?mail|swift ?mailer|mailchimp|sendgrid"
    r"|mailgun|sendinblue|brevo|campaign|newsletter|mass ?mail|bulk|framework::mail|mail::"
    r"|guardian angel|emailsys)",
    re.IGNORECASE,
)
_PROMOTION = re.compile(
    r"([$€£] ?\d+[.,]\d\d|\d+[.,]\d\d ?[$€£]|\d+ ?% off|\bon sale\b|\bdiscount|limited time"
    r"|buy now|order now|act now|special offer|gift card|\bwinner\b|\bprize\b|risk[- ]free"
    r"|100% free|lowest price|best price|click here|free (updates|upgrades|shipping|trial|gift"
    r"|download)|\b(viagra|cialis|pills?|casino|p[o0]rn|lottery|jackpot|forex|weight loss"
    r"|enlargement|inheritance|western union)\b)"
)
_SECURITY_NOTICE = re.compile(
    r"(may not be safe|virus|malware|dangerous)"
    r".{0,250}(deleted|removed|stripped|quarantined|blocked)"
    r"|(deleted|removed|stripped) .{0,40}attachment.{0,60}(not be safe|virus|policy)"
)
_FOOTER_WORDS = re.compile(r"(unsubscribe|opt[- ]out|remove your (e-?mail|address))")

Sign = tuple[int, str]
_LIST_SIGN = "mailing-list headers (List-Unsubscribe/List-Id)"


def reply_strength(msg: ParsedMessage) -> int:
    """2: thread headers or a quoted original; 1: only a reply prefix; 0: not a reply."""
    subject = fold_flat(msg.subject)
    if FORWARD_PREFIX.match(subject) and not REPLY_PREFIX.match(subject):
        return 0
    if msg.in_reply_to or msg.references or msg.quote_marker not in (None, "signature"):
        return 2
    return 1 if REPLY_PREFIX.match(subject) else 0


def bulk_or_spam(msg: ParsedMessage) -> str | None:
    """Why ``msg`` looks like bulk mail or spam, or None when a person may have written it."""
    h = msg.headers
    if h.get("x-spam-flag", "").strip().lower().startswith("yes") or \
            h.get("x-spam-status", "").strip().lower().startswith("yes"):
        return "marked as spam by a filter (X-Spam-Flag/X-Spam-Status)"
    if _GTUBE in msg.text:
        return "GTUBE spam test string"
    strength = reply_strength(msg)
    if strength == 2:
        return None
    signs = spam_signs(msg)
    if strength == 1:
        # Only "Re:" says it is a reply: weigh only what a person's reply never shows.
        # A mailing list or group carries people's replies: its headers (List-Id, Precedence:
        # list) say nothing about a reply (SPEC; issue 11), only about a fresh mail.
        signs = [(w, d) for w, d in signs
                 if (w == 2 or d.startswith("Date header")) and d != _LIST_SIGN]
    score = sum(weight for weight, _ in signs)
    strong = any(weight == 2 for weight, _ in signs)
    if all(d == _LIST_SIGN for _, d in signs):
        return None  # mailing-list headers alone never make a message other (SPEC)
    if strength == 0 and (score >= 3 or (score >= 2 and strong)):
        return "not a reply: " + ", ".join(d for _, d in signs[:3])
    if strength == 1 and score >= 3 and strong:
        return "reply prefix only, " + ", ".join(d for _, d in signs[:3])
    return None


def spam_signs(msg: ParsedMessage) -> list[Sign]:
    """Weighted signs (2 strong, 1 weak) of machine-sent or unsolicited mail, strongest first."""
    signs = _header_signs(msg) + _content_signs(msg)
    return sorted(signs, key=lambda s: -s[0])


def _header_signs(msg: ParsedMessage) -> list[Sign]:
    h = msg.headers
    signs: list[Sign] = []
    if "feedback-id" in h or "x-campaign" in h or "x-mailgun-tag" in h:
        signs.append((2, "bulk-mail headers (Feedback-ID/X-Campaign)"))
    elif "list-unsubscribe" in h or "list-id" in h or \
            h.get("precedence", "").strip().lower() == "list":
        signs.append((2, _LIST_SIGN))
    if not msg.to_addrs or "undisclosed" in h.get("to", "").lower():
        signs.append((2, "no named recipient"))
    elif len(msg.to_addrs) > 8:
        signs.append((2, f"sent to {len(msg.to_addrs)} recipients"))
    if any(d.startswith("from:invalid-display-name") for d in msg.defects) \
            and "@" in (msg.from_name or ""):
        signs.append((2, "sender's display name is another address"))
    mailer = h.get("x-mailer", "")
    if _AUTOMATED_MAILER.search(mailer):
        signs.append((2, f"sent by a program (X-Mailer: {mailer[:40]})"))
    if "no-message-id" in msg.defects:
        signs.append((2, "no Message-ID"))
    if h.get("precedence", "").strip().lower() in ("bulk", "junk"):
        signs.append((1, f"Precedence: {h['precedence'].strip().lower()}"))
    if _foreign_return_path(msg):
        signs.append((1, "Return-Path domain differs from From"))
    if _forged_date(msg):
        signs.append((1, "Date header far from the time it was received"))
    return signs


def _content_signs(msg: ParsedMessage) -> list[Sign]:
    signs: list[Sign] = []
    risky = [n for n in msg.attachment_names if _RISKY_ATTACHMENT.search(n.lower())]
    if risky:
        signs.append((2, f"executable or archive attachment '{risky[0]}'"))
    carried = msg.attachment_names or any(not t.startswith(("text/", "multipart/"))
                                          for t in msg.content_types)
    if len(re.findall(r"\w{2,}", msg.new_text)) < 2 and carried:
        signs.append((2, "no text of its own, only an attachment"))
    flat = fold_flat(msg.text[:20_000])
    # A forward's or reply's quoted original (perhaps our own mail, with its footer and links)
    # is not what the sender wrote: weigh the wording above it.
    own = fold_flat(msg.new_text[:20_000]) if msg.quote_marker not in (None, "signature") else flat
    if _SECURITY_NOTICE.search(flat):
        signs.append((2, "an attachment removed by a security filter"))
    if "message/rfc822" in msg.content_types or FORWARD_PREFIX.match(fold_flat(msg.subject)):
        signs.append((1, "a forwarded message"))  # weak: a lead may forward us something
    if msg.html_only:
        signs.append((1, "HTML only"))
    if len(re.findall(r"https?://", own)) >= 2:
        signs.append((1, "links to follow"))
    promotion = {m.group(0) for m in _PROMOTION.finditer(own + " " + fold_flat(msg.subject))}
    if promotion:
        # Two phrases are suspicious; three are a sales pitch.
        weight = 2 if len(promotion) >= 3 else len(promotion)
        signs.append((weight, f"promotional wording ('{min(promotion)}')"))
    if _FOOTER_WORDS.search(own):
        signs.append((1, "an unsubscribe footer on a mail that is not a reply"))
    return signs


def _foreign_return_path(msg: ParsedMessage) -> bool:
    m = re.search(r"@([\w.-]+)", msg.headers.get("return-path", ""))
    if not m or not msg.from_addr or "@" not in msg.from_addr:
        return False
    bounce_domain = m.group(1).lower().split(".")
    from_domain = msg.from_addr.split("@")[1].split(".")
    return bounce_domain[-2:] != from_domain[-2:]


def _forged_date(msg: ParsedMessage) -> bool:
    """The Date header lies days away from when the newest Received header says it arrived."""
    received = msg.headers.get("received", "")
    if msg.date is None or ";" not in received:
        return False
    try:
        arrived = parsedate_to_datetime(received.rsplit(";", 1)[1].strip())
    except (TypeError, ValueError, IndexError):
        return False
    if arrived.tzinfo is None:
        arrived = arrived.replace(tzinfo=UTC)
    return abs((arrived - msg.date).total_seconds()) > 3 * 86400
