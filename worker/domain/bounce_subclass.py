"""Why one recipient bounced, and what that means for the address: hard, soft or policy.

A reason is read from the diagnostic text first (the remote server's own words), in the
order of :data:`worker.domain.bounce_phrases.REASONS`, and from the RFC 3463 status code
when the words say nothing. Two refinements, learnt from how bounce libraries such as
sisimai read real notices:

* "user unknown" is trusted when the status says so (x.1.0, x.1.1, x.1.3) or the server
  refused the address at ``RCPT TO``. Said after ``DATA`` (or with no command named) it is
  usually a content filter posing as a missing user, so it is ``soft``.
* A 5.1.1-style status beats vague words (spam, system, policy) but not specific ones
  (mailbox full, message too large, suspended, moved, relaying denied, authentication).

Subclasses: ``hard`` for a dead address (unknown user or domain, moved, null MX),
``policy`` for a 5.7.x refusal for a reason on the sender's side, ``soft`` for the rest.
"""

from __future__ import annotations

import re

from worker.domain import dsn
from worker.domain.bounce_phrases import HARD, POLICY, REASONS
from worker.domain.phrases import compile_table

_REASONS = compile_table(REASONS, anchor="")
#: RFC 3463 ``subject.detail`` -> reason, for codes whose meaning is settled.
_STATUS_REASON = {
    "1.0": "user_unknown", "1.1": "user_unknown", "1.3": "user_unknown",
    "1.2": "host_unknown", "1.4": "filtered", "1.6": "has_moved",
    "1.7": "rejected", "1.8": "rejected", "1.10": "not_accept",
    "2.0": "filtered", "2.1": "filtered", "2.2": "mailbox_full", "2.3": "too_big",
    "2.4": "filtered",
    "3.0": "system", "3.1": "system", "3.2": "not_accept", "3.3": "system", "3.4": "too_big",
    "3.5": "system",
    "4.0": "system", "4.1": "expired", "4.2": "system", "4.3": "system", "4.4": "host_unknown",
    "4.6": "system", "4.7": "expired",
    "5.0": "system", "5.3": "system", "5.4": "system", "6.0": "content", "6.1": "content",
    "7.13": "suspend", "7.17": "has_moved", "7.18": "has_moved", "7.20": "auth", "7.21": "auth",
    "7.22": "auth", "7.23": "auth", "7.24": "auth", "7.25": "ptr", "7.26": "auth",
    "7.27": "not_accept", "7.28": "spam",
}
#: Specific causes that a 5.1.x "bad mailbox" status does not override.
_BEATS_STATUS = frozenset({"mailbox_full", "too_big", "suspend", "has_moved", "norelay", "auth",
                           "blocked", "rejected", "spam", "speeding", "filtered", "too_many_conn"})
#: Words too vague to overrule a status code that names a specific cause.
_VAGUE = frozenset({"system", "policy", "recipient_refused", "expired", "filtered"})
#: Status reasons specific enough to overrule vague words.
_SPECIFIC_STATUS = frozenset({"suspend", "has_moved", "not_accept", "auth", "ptr", "mailbox_full",
                              "too_big", "content", "rejected"})
#: Reasons that stay ``soft`` even with a 5.7.x status (the address or our mail is fine).
_SOFT_EVEN_57 = frozenset({"mailbox_full", "too_big", "suspend", "norelay", "filtered", "expired"})
#: Reasons that a 5.7.x status turns into ``policy`` (besides the sender-side ones).
_POLICY_WITH_57 = POLICY | {None, "security", "system", "content"}
_COMMANDS = re.compile(
    r"(in reply to (?:end of )?(rcpt to|mail from|data|helo|ehlo)\b"
    r"|after (rcpt to|rcpt|mail from|end of data|data|helo|ehlo)\b"
    r"|>>> ?(rcpt to|mail from|data|helo|ehlo)\b(?=[^<]{0,200}<<< ?[45]\d\d))"
)
_REMOTE_CODE = re.compile(r"\b[245]\d\d[ -]['\"(]?([245]\.\d{1,3}\.\d{1,3})\b")


def status_reason(status: str | None) -> str | None:
    """The reason RFC 3463 gives a status code, or None when the code is too vague."""
    if not status:
        return None
    parts = status.split(".")
    if len(parts) != 3:
        return None
    key = f"{parts[1]}.{parts[2]}"
    if key in _STATUS_REASON:
        return _STATUS_REASON[key]
    if parts[1] == "7":
        return "security"
    if parts[1] == "6":
        return "content"
    return None


def smtp_command(text: str) -> str | None:
    """The SMTP command the remote server refused (RCPT, MAIL, DATA, HELO), if named."""
    m = _COMMANDS.search(text)
    if not m:
        return None
    word = next(g for g in m.groups() if g)
    if word.startswith("rcpt"):
        return "RCPT"
    if word.startswith("mail"):
        return "MAIL"
    return "DATA" if "data" in word else "HELO"


def effective_status(status: str | None, diagnostic: str) -> str | None:
    """The Status field, or the remote server's more specific code from the diagnostic."""
    remote = [m.group(1) for m in _REMOTE_CODE.finditer(diagnostic)]
    codes = remote + dsn.codes_in(diagnostic)
    if status and remote and remote[0][0] == status[0] and not remote[0].endswith(".0.0"):
        return remote[0]  # the remote server's own code beats the reporting MTA's translation
    if status is None or status.endswith(".0.0"):
        specific = [c for c in codes if not c.endswith(".0.0")]
        if specific and (status is None or specific[0][0] == status[0]):
            return specific[0]
        return status or (codes[0] if codes else None)
    return status


def categories(text: str) -> list[tuple[str, str]]:
    """Every reason category whose pattern occurs in folded ``text``, in table order."""
    out = []
    for cat, _pattern, rx in _REASONS:
        m = rx.search(text)
        if m:
            out.append((cat, m.group(0)))
    return out


def judge(status: str | None, diagnostic: str, notice: str, delayed: bool,
          action: str | None = None) -> tuple[str, str]:
    """(subclass, explanation) for one failed recipient; texts are folded."""
    status = effective_status(status, diagnostic)
    if status is None and not diagnostic:
        status = effective_status(None, notice[:3000])
    described = f"Status: {status}" if status else "no status code"
    if action:
        described += f" (Action: {action})"
    if delayed:
        return "soft", f"delivery delayed, still being retried: {described}"
    reason, words = _reason(status, diagnostic, notice)
    if words:
        described += f", '{words}'"
    if reason:
        described += f" -> {reason.replace('_', ' ')}"
    if status and status.startswith("4"):
        return "soft", described
    if reason in HARD:
        return "hard", described
    if status and status.startswith("5.7") and reason not in _SOFT_EVEN_57 \
            and reason in _POLICY_WITH_57:
        return "policy", described
    return "soft", described


def _reason(status: str | None, diagnostic: str, notice: str) -> tuple[str | None, str]:
    """(reason, the words that said so) from the diagnostic, the notice and the status code."""
    by_status = status_reason(status)
    transient = bool(status and status.startswith("4"))
    command = smtp_command(diagnostic) or smtp_command(notice)
    found = categories(diagnostic) or categories(notice)
    if not found:
        if by_status in (None, "system") and not transient and command == "RCPT":
            # The server refused this very address at RCPT TO and said nothing else.
            return "user_unknown", "refused at RCPT TO"
        return by_status, ""
    reason, words = found[0]
    status_says_dead = by_status in ("user_unknown", "host_unknown") and not transient
    # A dead-address status beats vague words; a specific status beats vague words too.
    overrule = (status_says_dead and reason not in _BEATS_STATUS and reason not in HARD) \
        or (by_status in _SPECIFIC_STATUS and reason in _VAGUE)
    if overrule and by_status is not None:
        reason = by_status
    elif by_status == "rejected" and reason in HARD:
        reason = "rejected"  # 5.1.7/5.1.8: it is our sender address that is unknown
    if reason in HARD and command == "MAIL":
        reason = "rejected"  # refused at MAIL FROM: about the sender, not the recipient
    return reason, words
