"""Inbound messages built as mail clients and servers send them, for the classifier tests."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime

from worker.domain.classify import Classification, classify_bytes

STEP_ID = "step-1.enrolment-42@nurture.test"
SENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday
QUOTE_WITH_FOOTER = (
    "\n\nOn Mon, Mar 2, 2026 at 9:00 AM Dana <dana@acme.example> wrote:\n"
    "> Here is your free report.\n>\n"
    "> You receive this because you asked for it. Click here to unsubscribe:\n"
    "> https://mail.acme.example/u/abc\n"
)


def mail(body: str = "Thanks, sounds good.", subject: str = "Re: Your free report", *,
         headers: dict[str, str] | None = None, sender: str = "Lee Lead <lead@example.com>",
         to: str = "Dana <dana@acme.example>", when: datetime = SENT, html: str | None = None,
         reply: bool = True) -> bytes:
    """A message as a lead's mail client would send it."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = "<reply-1@example.com>"
    if reply:
        msg["In-Reply-To"] = f"<{STEP_ID}>"
        msg["References"] = f"<{STEP_ID}>"
    for name, value in (headers or {}).items():
        msg[name] = value
    if html is not None and body:
        msg.set_content(body)
        msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    else:
        msg.set_content(body)
    return msg.as_bytes()


def run(raw: bytes) -> Classification:
    return classify_bytes(raw)[1]
