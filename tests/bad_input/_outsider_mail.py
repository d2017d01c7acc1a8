"""Mail an outsider can write, and the genuine mail it imitates (for ``test_outsider_mail``)."""

from __future__ import annotations

import itertools

_ids = itertools.count()


def _mid(domain: str = "evil.test") -> str:
    return f"<m{next(_ids)}.{id(_ids)}@{domain}>"


def plain(sender: str, body: str, subject: str = "Re: Your report", headers: str = "",
          to: str = "Dana <dana@acme.example>") -> bytes:
    """A plain text mail."""
    return (f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: {_mid()}\r\n"
            f"{headers}Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


def reply(sender: str, in_reply_to: str, body: str, headers: str = "") -> bytes:
    """A reply threading onto ``in_reply_to`` (a bare id)."""
    return plain(sender, body, headers=f"In-Reply-To: <{in_reply_to}>\r\n"
                 f"References: <{in_reply_to}>\r\n{headers}")


def dsn(recipient: str, message_id: str, status: str = "5.1.1",
        mailer: str = "MAILER-DAEMON@mx.evil.test") -> bytes:
    """A delivery status notification (RFC 3464) for ``recipient`` quoting ``message_id``."""
    return (
        f"From: Mail Delivery System <{mailer}>\r\nTo: dana@acme.example\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {_mid()}\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        "report-type=delivery-status; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n"
        "\r\nYour message could not be delivered.\r\n\r\n--BB\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.evil.test\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{recipient}>: User unknown\r\n\r\n--BB\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nFrom: dana@acme.example\r\nTo: {recipient}\r\n"
        f"Subject: Your report\r\nMessage-ID: <{message_id}>\r\n\r\n--BB--\r\n").encode()


def plain_bounce(recipient: str) -> bytes:
    """A bounce without report structure that names the address in its text."""
    return (
        "From: MAILER-DAEMON@mx.evil.test\r\nTo: dana@acme.example\r\n"
        f"Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: {_mid()}\r\n"
        "Content-Type: text/plain\r\n\r\nThis is the mail system at host mx.evil.test.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\nbe delivered to one "
        "or more recipients.\r\n\r\n"
        f"<{recipient}>: host mx.victims.test said: 550 5.1.1 <{recipient}>: Recipient address "
        "rejected: User unknown in local recipient table\r\n").encode()


def complaint(recipient: str, message_id: str, sender: str = "abuse@isp.evil.test") -> bytes:
    """An ARF spam complaint (RFC 5965) about a mail to ``recipient``."""
    return (
        f"From: {sender}\r\nTo: dana@acme.example\r\nSubject: Complaint about message\r\n"
        f"Message-ID: {_mid()}\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        "report-type=feedback-report; boundary=\"FB\"\r\n\r\n--FB\r\nContent-Type: text/plain"
        "\r\n\r\nThis is an email abuse report.\r\n\r\n--FB\r\n"
        "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        "User-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n"
        f"Original-Rcpt-To: {recipient}\r\n\r\n--FB\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: dana@acme.example\r\nTo: {recipient}\r\nSubject: Your report\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nHello\r\n\r\n--FB--\r\n").encode()


def auth_results(authserv: str, dmarc: str) -> str:
    """An ``Authentication-Results`` header line (with its CRLF)."""
    return (f"Authentication-Results: {authserv}; spf=fail smtp.mailfrom=x (forged);\r\n "
            f"dmarc={dmarc} (p=reject) header.from=good.test\r\n")
