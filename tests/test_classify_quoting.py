"""Forwards, Lotus Notes quoting and auto-replies that quote the mail they answer (issue 11)."""

from __future__ import annotations

import pytest

from tests.classifykit import mail, run
from worker.domain.classify import classify_bytes
from worker.domain.model import InboundClass

OUR_MAIL = ("Here is your free report.\nYou receive this because you asked for it. "
            "Click here to unsubscribe: https://mail.acme.example/u/abc\n"
            "Manage preferences: https://mail.acme.example/p/abc\n")
NOTES_TABLE = ("Thanks, send me the contract. Please use my mobile.\n\n\n\n"
               "Dana Whitfield <dana@acme.example>\n02.03.2026 09:00\n\nTo\nlead@example.com\n"
               "cc\n\nSubject\nYour free report\n\n" + OUR_MAIL)
NOTES_LINE = ("Thanks, send me the contract. Please use my mobile.\n\n"
              "-----\"Dana Whitfield\" <dana@acme.example> wrote: -----\n\n" + OUR_MAIL)


@pytest.mark.parametrize("body", [
    "Jan should see this.\n\n---------- Forwarded message ---------\nFrom: Dana "
    "<dana@acme.example>\nDate: Mon, Mar 2, 2026 at 9:00 AM\nSubject: Your free report\n"
    "To: <lead@example.com>\n\n" + OUR_MAIL,
    "Looping in Jan.\n\nBegin forwarded message:\n\nFrom: Dana <dana@acme.example>\n"
    "Subject: Your free report\nDate: 2 March 2026 at 09:00:00 GMT\nTo: lead@example.com\n\n"
    + OUR_MAIL,
])
def test_a_lead_forwarding_our_mail_is_human(body: str) -> None:
    # Given a lead who forwards our mail (footer, links and all) back with a note
    verdict = run(mail(body, "Fwd: Your free report", reply=False))
    # Then our own footer and links under the forward do not make it spam
    assert verdict.cls is InboundClass.HUMAN, verdict.reason


@pytest.mark.parametrize("body", [NOTES_TABLE, NOTES_LINE])
def test_lotus_notes_quoting_ends_the_new_text(body: str) -> None:
    msg, verdict = classify_bytes(mail(body))
    assert msg.new_text == "Thanks, send me the contract. Please use my mobile."
    assert verdict.cls is InboundClass.HUMAN


def test_lotus_notes_quote_of_a_footer_is_not_a_request() -> None:
    body = NOTES_TABLE.replace("Thanks, send me the contract. Please use my mobile.",
                               "Call me tomorrow.")
    assert run(mail(body)).cls is InboundClass.HUMAN


@pytest.mark.parametrize("body", [
    "Thank you for your message. I am out of the office until 14 December with limited access "
    "to email. For urgent matters please contact my colleague at info@lead.example.\n\n"
    "-----Original Message-----\nFrom: Dana <dana@acme.example>\nSent: Monday, March 2, 2026\n"
    "To: Lee\nSubject: Your free report\n\n" + OUR_MAIL,
    "Vielen Dank für Ihre Nachricht. Ich bin bis 14.12. nicht im Büro. In dringenden Fällen "
    "wenden Sie sich bitte an info@lead.example.\n\nAm 02.03.2026 um 09:00 schrieb Dana "
    "<dana@acme.example>:\n> Here is your free report.\n",
])
def test_an_auto_reply_without_headers_that_quotes_the_mail_is_an_auto_reply(body: str) -> None:
    verdict = run(mail(body))
    assert verdict.cls is InboundClass.AUTO_REPLY, verdict.reason
    assert verdict.return_date is not None and verdict.return_date.isoformat() == "2026-12-14"


@pytest.mark.parametrize("body", [
    "Yes let's talk. I am out of the office until Friday, can you call me Monday?\n\n"
    "On Mon, Mar 2, 2026 at 9:00 AM Dana <dana@acme.example> wrote:\n> Here is your report.\n",
    "I'm on holiday until the 14th but my colleague Jan can show you around the plant, he is "
    "the one who decides on this and he already read your report with interest. Regards, Lee"
    "\n\nOn Mon, Mar 2, 2026 at 9:00 AM Dana <dana@acme.example> wrote:\n> Here is your report.\n",
])
def test_a_person_mentioning_an_absence_over_a_quote_stays_human(body: str) -> None:
    assert run(mail(body)).cls is InboundClass.HUMAN
