"""Unit tests for inbound parsing and classification, on messages built here."""

from __future__ import annotations

import base64
import io
import json
from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from worker.commands.inbox import run_classify
from worker.domain.classify import Classification, classify, classify_bytes, parse_message
from worker.domain.model import InboundClass

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


# --- parsing --------------------------------------------------------------------------------


def test_parse_reads_ids_addresses_subject_and_date() -> None:
    # Given a reply with an encoded subject and several recipients
    raw = mail("Hello", subject="=?utf-8?q?Re=3A_Caf=C3=A9?=", to="A <A@Example.com>",
               headers={"Cc": "b@example.org", "Delivered-To": "dana@acme.example"})
    # When it is parsed
    msg = parse_message(raw)
    # Then ids lose their angle brackets, addresses are lower case, the date is aware
    assert msg.message_id == "reply-1@example.com"
    assert msg.in_reply_to == (STEP_ID,)
    assert msg.references == (STEP_ID,)
    assert msg.from_addr == "lead@example.com"
    assert msg.from_name == "Lee Lead"
    assert msg.to_addrs == ("a@example.com", "b@example.org", "dana@acme.example")
    assert msg.subject == "Re: Café"
    assert msg.date == SENT
    assert msg.date is not None and msg.date.tzinfo is not None


def test_new_text_stops_at_the_quote_and_signature() -> None:
    # Given a top-posted reply with a signature and a quoted original
    raw = mail("Yes please, send it.\n\n-- \nLee\nACME Corp" + QUOTE_WITH_FOOTER)
    # When it is parsed
    msg = parse_message(raw)
    # Then the new text is only what Lee wrote
    assert msg.new_text == "Yes please, send it."
    assert "unsubscribe" in msg.text


@pytest.mark.parametrize("header", [
    "Am 02.03.2026 um 10:00 schrieb Dana <dana@acme.example>:",
    "Le lun. 2 mars 2026 à 10:00, Dana <dana@acme.example> a écrit :",
    "El lun, 2 mar 2026 a las 10:00, Dana (<dana@acme.example>) escribió:",
    "Il giorno lun 2 mar 2026 alle ore 10:00 Dana <dana@acme.example> ha scritto:",
    "Op ma 2 mrt. 2026 om 10:00 schreef Dana <dana@acme.example>:",
    "Em seg., 2 de mar. de 2026 às 10:00, Dana <dana@acme.example> escreveu:",
    "Den 2 mars 2026 kl. 10:00 skrev Dana <dana@acme.example>:",
    "W dniu 2.03.2026 o 10:00, Dana <dana@acme.example> pisze:",
    "ma 2.3.2026 klo 10.00 Dana (dana@acme.example) kirjoitti:",
    "-----Original Message-----",
    "-----Ursprüngliche Nachricht-----",
])
def test_quote_headers_in_many_languages(header: str) -> None:
    # Given a reply whose client wrote this quote header
    raw = mail(f"Bitte mehr Infos.\n\n{header}\n> Here is your free report.")
    # When it is parsed
    # Then only the text above the header is new
    assert parse_message(raw).new_text == "Bitte mehr Infos."


def test_outlook_header_block_ends_the_new_text() -> None:
    body = ("Sounds good.\n\n________________________________\nFrom: Dana <dana@acme.example>\n"
            "Sent: Monday, March 2, 2026 10:00 AM\nTo: Lee\nSubject: Your free report\n\n"
            "Here it is.")
    assert parse_message(mail(body)).new_text == "Sounds good."


# --- human replies ----------------------------------------------------------------------------


def test_plain_reply_is_human() -> None:
    # Given a lead's reply that quotes our mail (footer and all)
    result = run(mail("Great, can we talk on Tuesday?" + QUOTE_WITH_FOOTER))
    # Then it is a human reply, not an unsubscribe request
    assert result.cls == InboundClass.HUMAN
    assert result.subclass is None
    assert result.return_date is None
    assert "person" in result.reason


def test_html_only_reply_is_human_and_quote_is_not_new_text() -> None:
    html = ("<html><body><div>Happy to chat, call me tomorrow.</div>"
            "<div class=\"gmail_quote\">On Mon Dana wrote:<blockquote>Here is your report. "
            "<a href=\"https://x\">Unsubscribe</a></blockquote></div></body></html>")
    raw = mail("", html=html)
    msg = parse_message(raw)
    assert msg.html_only is True
    assert "Happy to chat" in msg.new_text and "Unsubscribe" not in msg.new_text
    assert classify(msg).cls == InboundClass.HUMAN


def test_fresh_mail_without_re_is_human() -> None:
    raw = mail("Hi Dana, a colleague passed me your report. Do you have pricing?",
               subject="Pricing question", reply=False)
    assert run(raw).cls == InboundClass.HUMAN


def test_reply_with_attachment_is_human() -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "lead@example.com", "dana@acme.example", "Re: Report"
    msg["Date"], msg["Message-ID"] = format_datetime(SENT), "<r2@example.com>"
    msg["In-Reply-To"] = f"<{STEP_ID}>"
    msg.set_content("Here is our spec, please quote.")
    msg.add_attachment(b"%PDF-1.4 ...", maintype="application", subtype="pdf", filename="spec.pdf")
    assert run(msg.as_bytes()).cls == InboundClass.HUMAN


def test_mailing_list_headers_alone_do_not_make_other() -> None:
    raw = mail("Interesting, tell me more.", headers={"List-Id": "<team.example.com>",
                                                      "Precedence": "list"})
    assert run(raw).cls == InboundClass.HUMAN


@pytest.mark.parametrize("body", [
    "Ich bin derzeit auf der Suche nach einer Lösung für unser Vertriebsteam.",
    "Ik ben met interesse uw rapport aan het lezen. Wat kost het?",
    "I'm currently traveling but wanted to ask about pricing for 20 seats.",
    "Thank you for your email. Yes, I'd like a demo next week.",
    "We have received your quote, thanks. Our new address is 5 Main St.",
])
def test_fresh_mail_with_auto_reply_like_words_stays_human(body: str) -> None:
    # Given a lead's own first mail (no quote, no headers) whose words resemble an auto-reply
    raw = mail(body, subject="Question", reply=False)
    # Then only wording typical of auto-replies would make it one: this is a person
    assert run(raw).cls == InboundClass.HUMAN


def test_person_mentioning_holiday_in_a_reply_stays_human() -> None:
    # Given a real reply that mentions being out of office, quoting our mail
    raw = mail("Thanks! I'm out of office next week but call me on Friday." + QUOTE_WITH_FOOTER)
    # Then the mention does not make it an automatic reply
    assert run(raw).cls == InboundClass.HUMAN


# --- automatic replies ------------------------------------------------------------------------


@pytest.mark.parametrize(("subject", "body", "back"), [
    ("Out of Office: Your free report",
     "I am out of the office until Monday 9 March, replies when I am back.", date(2026, 3, 9)),
    ("Abwesenheitsnotiz: Ihr Bericht",
     "Vielen Dank für Ihre Nachricht. Ich bin bis zum 12.03. nicht im Büro.", date(2026, 3, 12)),
    ("Réponse automatique : Votre rapport",
     "Je suis absent jusqu'au 3 avril. Pour toute urgence, contactez Paul.", date(2026, 4, 3)),
    ("Respuesta automática: Su informe",
     "Estoy fuera de la oficina hasta el 4 de abril.", date(2026, 4, 4)),
    ("Risposta automatica: Il tuo report",
     "Sono fuori ufficio fino al 3 aprile.", date(2026, 4, 3)),
    ("Automatisch antwoord: Uw rapport",
     "Ik ben afwezig tot en met 5 mei.", date(2026, 5, 5)),
    ("Resposta automática: O seu relatório",
     "Estou ausente até 10 de junho.", date(2026, 6, 10)),
    ("Automatiskt svar: Din rapport",
     "Jag är ledig till den 3 april.", date(2026, 4, 3)),
    ("Autosvar: Din rapport",
     "Jeg er på ferie indtil 3. april.", date(2026, 4, 3)),
    ("Automaattinen vastaus: Raporttisi",
     "Olen lomalla 3.4. asti.", date(2026, 4, 3)),
    ("Automatyczna odpowiedź: Twój raport",
     "Jestem na urlopie do 5 maja.", date(2026, 5, 5)),
])
def test_auto_reply_by_subject_in_each_language(subject: str, body: str, back: date) -> None:
    # Given an out-of-office reply with no automatic headers at all
    raw = mail(body, subject=subject, reply=False)
    # When it is classified
    result = run(raw)
    # Then its subject gives it away, and the text its return date
    assert (result.cls, result.subclass) == (InboundClass.AUTO_REPLY, "ooo")
    assert result.return_date == back
    assert "subject phrase" in result.reason


@pytest.mark.parametrize(("body", "back"), [
    ("I am currently out of the office, returning on 05/03/2026.", date(2026, 3, 5)),
    ("Ich bin bis einschließlich 20. März 2026 im Urlaub.", date(2026, 3, 20)),
    ("Je suis absente du bureau jusqu'au 9 mars.", date(2026, 3, 9)),
    ("Estoy de vacaciones hasta el 6 de marzo.", date(2026, 3, 6)),
    ("Sono in ferie fino al 10 marzo.", date(2026, 3, 10)),
    ("Ik ben tot en met 8 maart op vakantie.", date(2026, 3, 8)),
    ("Estou de férias até 11 de março.", date(2026, 3, 11)),
    ("Jag är på semester till den 12 mars.", date(2026, 3, 12)),
    ("Jeg er på ferie indtil 13. marts.", date(2026, 3, 13)),
    ("Olen lomalla 14.3. asti.", date(2026, 3, 14)),
    ("Jestem nieobecna do 15 marca.", date(2026, 3, 15)),
])
def test_auto_reply_by_opening_words_only(body: str, back: date) -> None:
    # Given an auto-reply with a plain "Re:" subject, no headers, no quote
    raw = mail(body, reply=False)
    # Then the opening words make it an out-of-office reply
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.AUTO_REPLY, "ooo")
    assert result.return_date == back


@pytest.mark.parametrize("headers", [
    {"Auto-Submitted": "auto-replied"},
    {"X-Autoreply": "yes"},
    {"X-Autorespond": "vacation"},
    {"Precedence": "auto_reply"},
    {"X-Apple-Action": "VACATION"},
])
def test_auto_reply_headers(headers: dict[str, str]) -> None:
    raw = mail("Thanks for your mail, I will get back to you.", headers=headers)
    result = run(raw)
    assert result.cls == InboundClass.AUTO_REPLY
    assert result.reason.split(":")[0].lower() in {k.lower() for k in headers}


def test_auto_submitted_no_is_not_an_auto_reply() -> None:
    raw = mail("Let's talk." + QUOTE_WITH_FOOTER, headers={"Auto-Submitted": "no"})
    assert run(raw).cls == InboundClass.HUMAN


def test_auto_response_suppress_alone_is_not_enough() -> None:
    raw = mail("Please send the price list." + QUOTE_WITH_FOOTER,
               headers={"X-Auto-Response-Suppress": "All"})
    assert run(raw).cls == InboundClass.HUMAN


def test_apple_vacation_end_date_from_header() -> None:
    raw = mail("I'm only sleeping.", subject="Auto reply: Your free report",
               headers={"X-Apple-Action": "VACATION",
                        "X-Apple-Criteria": "{kind=VACATION,startDate=2026-02-28T15:00:00Z,"
                                            "endDate=2026-03-20T14:59:59Z}"})
    result = run(raw)
    assert (result.cls, result.return_date) == (InboundClass.AUTO_REPLY, date(2026, 3, 20))


@pytest.mark.parametrize(("text", "when", "back"), [
    ("I will be back on 5 January.", datetime(2026, 12, 20, tzinfo=UTC), date(2027, 1, 5)),
    ("Out of office until 2026-04-07.", SENT, date(2026, 4, 7)),
    ("I am away, back on Monday.", datetime(2026, 3, 4, tzinfo=UTC), date(2026, 3, 9)),
    ("I will be travelling on March 10-20 with limited access to email.", SENT, date(2026, 3, 20)),
    ("I am away until 05/07/2026.", datetime(2026, 7, 1, tzinfo=UTC), date(2026, 7, 5)),
    ("I am currently away returning to the office on May 5th.", SENT, date(2026, 5, 5)),
    ("Out of the office, back on the 16th of March.", SENT, date(2026, 3, 16)),
    ("I am on annual leave from 3 March to 13 March.", SENT, date(2026, 3, 13)),
])
def test_return_date_forms(text: str, when: datetime, back: date) -> None:
    raw = mail(text, subject="Automatic reply: Your free report", when=when,
               headers={"Auto-Submitted": "auto-replied"})
    assert run(raw).return_date == back


def test_no_stated_return_date() -> None:
    raw = mail("I'm out of the office Friday.", subject="Automatic reply: Report",
               headers={"Auto-Submitted": "auto-replied"})
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.AUTO_REPLY, "ooo")
    assert result.return_date is None


def test_ticket_autoresponder() -> None:
    raw = mail("Thank you for contacting support. We have received your request and will "
               "respond within one business day.", subject="[Ticket #48213] Re: Your free report",
               headers={"Auto-Submitted": "auto-replied"})
    assert (run(raw).cls, run(raw).subclass) == (InboundClass.AUTO_REPLY, "autoresponder")


@pytest.mark.parametrize("body", [
    "This mailbox is no longer monitored. Please contact jane@example.com instead.",
    "I have left the company. Please contact sales@example.com for anything.",
    "Ich bin nicht mehr im Unternehmen. Bitte schreiben Sie zukünftig an info@example.de.",
])
def test_address_change(body: str) -> None:
    raw = mail(body, subject="Automatic reply: Your free report",
               headers={"X-Autoreply": "yes"})
    assert (run(raw).cls, run(raw).subclass) == (InboundClass.AUTO_REPLY, "address_change")


def test_bounce_with_auto_submitted_is_still_a_bounce() -> None:
    raw = dsn("5.1.1", "failed", "smtp; 550 5.1.1 <lead@example.com>: User unknown",
              extra_headers="Auto-Submitted: auto-replied\r\n")
    assert run(raw).cls == InboundClass.BOUNCE


# --- unsubscribe requests ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [
    "Please unsubscribe me.",
    "Remove me from your list, thanks.",
    "Stop emailing me.",
    "Bitte melden Sie mich ab.",
    "Merci de me désinscrire de cette liste.",
    "Quiero darme de baja.",
    "Cancellami dalla lista per favore.",
    "Graag afmelden voor deze mails.",
    "Por favor, descadastrar meu e-mail.",
    "Avregistrera mig, tack.",
    "Afmeld mig venligst.",
    "Poista minut listalta.",
    "Proszę wypisz mnie z listy.",
])
def test_unsubscribe_request_in_new_text(body: str) -> None:
    # Given a reply asking to stop, above our quoted mail
    result = run(mail(body + QUOTE_WITH_FOOTER))
    # Then it is an unsubscribe request, and the reason names the phrase
    assert result.cls == InboundClass.UNSUBSCRIBE
    assert "new text" in result.reason


def test_quoted_footer_is_not_a_request() -> None:
    # Given a reply whose only "unsubscribe" is in our quoted footer
    result = run(mail("Looks good, send me the pricing." + QUOTE_WITH_FOOTER))
    assert result.cls == InboundClass.HUMAN


def test_signature_mentioning_unsubscribe_is_not_a_request() -> None:
    body = "Thanks, that helps!\n\n-- \nLee Lead\nTo unsubscribe from our newsletter reply STOP"
    assert run(mail(body)).cls == InboundClass.HUMAN


def test_negated_unsubscribe_is_not_a_request() -> None:
    result = run(mail("I do not want to unsubscribe, just fewer mails please."))
    assert result.cls == InboundClass.HUMAN


def test_bare_unsubscribe_subject() -> None:
    result = run(mail("", subject="Unsubscribe"))
    assert result.cls == InboundClass.UNSUBSCRIBE
    assert "subject" in result.reason


def test_mailto_unsubscribe_token() -> None:
    # Given the mail a client sends to our List-Unsubscribe mailto
    raw = mail("", subject="unsubscribe", to="unsubscribe+AbC123_x.ZZ-9@acme.example", reply=False)
    msg, result = classify_bytes(raw)
    # Then the token is read, case kept
    assert msg.unsubscribe_token == "AbC123_x.ZZ-9"
    assert result.cls == InboundClass.UNSUBSCRIBE
    assert "unsubscribe+TOKEN" in result.reason


# --- delivery reports -----------------------------------------------------------------------


def dsn(status: str, action: str, diagnostic: str, *, extra_headers: str = "",
        notice: str = "This is the mail system at host mx.acme.example.") -> bytes:
    """A multipart/report delivery status notification returning our step."""
    return (
        "From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
        "To: dana@acme.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 02 Mar 2026 10:05:00 +0000\r\nMessage-ID: <dsn-1@mx.acme.example>\r\n"
        + extra_headers +
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\n" + notice + "\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        "Final-Recipient: rfc822; lead@example.com\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic}\r\n\r\n"
        "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: dana@acme.example\r\nTo: lead@example.com\r\nMessage-ID: <{STEP_ID}>\r\n"
        "Subject: Your free report\r\n\r\nHere it is.\r\n--b1--\r\n"
    ).encode()


@pytest.mark.parametrize(("status", "action", "diagnostic", "subclass"), [
    ("5.1.1", "failed", ("smtp; 550 5.1.1 <lead@example.com>: Recipient address rejected: "
                         "User unknown in virtual mailbox table"), "hard"),
    ("5.1.2", "failed", "X-Postfix; Host or domain name not found", "hard"),
    ("5.2.2", "failed", "smtp; 552 5.2.2 Mailbox full", "soft"),
    ("4.2.2", "failed", "smtp; 452 4.2.2 Over quota", "soft"),
    ("5.3.4", "failed", "smtp; 552 5.3.4 Message size exceeds fixed limit", "soft"),
    ("5.7.1", "failed", ("smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
                         "using zen.spamhaus.org"), "policy"),
    ("5.7.26", "failed", "smtp; 550 5.7.26 Unauthenticated mail is not accepted (DMARC)", "policy"),
    ("4.4.7", "delayed", "smtp; 451 4.4.7 Delivery time expired", "soft"),
    ("5.0.0", "failed", "smtp; 550 No such user here", "hard"),
])
def test_delivery_status_notifications(status: str, action: str, diagnostic: str,
                                       subclass: str) -> None:
    # Given an RFC 3464 report for our step
    msg, result = classify_bytes(dsn(status, action, diagnostic))
    # Then it is a bounce of the expected kind, tied to our original message
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, subclass)
    assert msg.final_recipients == ("lead@example.com",)
    assert msg.original_message_id == STEP_ID
    assert msg.status is not None


def test_delay_warning_is_soft_and_says_delayed() -> None:
    raw = dsn("4.4.1", "delayed", "smtp; 421 4.4.1 Connection timed out",
              notice="Delivery to the following recipient has been delayed. "
                     "This is a warning message only; you do not need to resend.")
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "soft")
    assert "delayed" in result.reason


def test_success_report_is_other() -> None:
    result = run(dsn("2.0.0", "delivered", "smtp; 250 2.0.0 OK"))
    assert (result.cls, result.subclass) == (InboundClass.OTHER, None)
    assert "delivered" in result.reason


def test_plain_text_qmail_bounce() -> None:
    raw = (b"From: MAILER-DAEMON@mail.example.net\r\nTo: dana@acme.example\r\n"
           b"Subject: failure notice\r\nDate: Mon, 02 Mar 2026 10:05:00 +0000\r\n\r\n"
           b"Hi. This is the qmail-send program at mail.example.net.\r\n"
           b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
           b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
           b"<lead@example.com>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
           b"--- Below this line is a copy of the message.\r\n\r\n"
           b"Message-ID: <" + STEP_ID.encode() + b">\r\nSubject: Your free report\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "hard")
    assert msg.final_recipients == ("lead@example.com",)
    assert msg.original_message_id == STEP_ID


def test_exim_bounce_with_failed_recipients_header() -> None:
    raw = (b"From: Mail Delivery System <Mailer-Daemon@exim.example.org>\r\n"
           b"To: dana@acme.example\r\n"
           b"Subject: Mail delivery failed: returning message to sender\r\n"
           b"X-Failed-Recipients: lead@example.com\r\nAuto-Submitted: auto-replied\r\n\r\n"
           b"This message was created automatically by mail delivery software.\r\n\r\n"
           b"A message that you sent could not be delivered to one or more of its\r\n"
           b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
           b"  lead@example.com\r\n    mailbox is full: retry timeout exceeded\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "soft")
    assert msg.final_recipients == ("lead@example.com",)


def test_arf_complaint() -> None:
    raw = (b"From: feedback@arf.mailbox.example\r\nTo: abuse@acme.example\r\n"
           b"Subject: FW: Your free report\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
           b"--f\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
           b"--f\r\nContent-Type: message/feedback-report\r\n\r\n"
           b"Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\r\n"
           b"--f\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Message-ID: <" + STEP_ID.encode() + b">\r\nSubject: Your free report\r\n\r\n"
           b"Hi\r\n--f--\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.OTHER, "complaint")
    assert "Feedback-Type: abuse" in result.reason
    assert msg.original_message_id == STEP_ID


def test_read_receipt_is_other() -> None:
    raw = (b"From: lead@example.com\r\nTo: dana@acme.example\r\nSubject: Read: Your free report\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=disposition-notification;"
           b' boundary="r"\r\n\r\n'
           b"--r\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
           b"--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
           b"Final-Recipient: rfc822; lead@example.com\r\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--r--\r\n")
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.OTHER, None)
    assert "read receipt" in result.reason


def test_challenge_response_is_other() -> None:
    raw = mail("Hello, I received your message. Please add yourself to my guest list so "
               "your messages go to my inbox: https://cr.example/verify?t=1",
               subject="Re: Your free report", sender="noreply@cr.example")
    assert run(raw).cls == InboundClass.OTHER


def test_newsletter_is_other() -> None:
    raw = mail("Big spring sale! 20% off everything. Click here to buy now.",
               subject="Our spring newsletter", reply=False,
               headers={"List-Unsubscribe": "<https://news.example/u/1>", "Precedence": "bulk"})
    assert run(raw).cls == InboundClass.OTHER


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage \x80\x81",
    b"\r\n\r\n",
    b"Subject: no body",
    b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/pl",
    (b"From: a@b.c\r\nSubject: Re: hi\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n"
     b"hall\xf6 \xe9"),
    b"Content-Type: text/plain; charset=utf-7\r\n\r\n+ZeVnLIqe-+AGAA-",
    b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nStatus: 5.1.1\r\n",
    b"Date: Mon, 99 Foo 20x\r\nFrom: =?bogus?q?x?= <>\r\n\r\nhi",
])
def test_odd_input_never_raises(raw: bytes) -> None:
    msg, result = classify_bytes(raw)
    assert result.cls in InboundClass
    assert isinstance(msg.text, str) and isinstance(result.reason, str) and result.reason


def test_twenty_megabyte_attachment_is_not_decoded() -> None:
    # Given a reply carrying a 20 MB attachment
    blob = base64.encodebytes(bytes(15_000_000))
    head = (b"From: lead@example.com\r\nTo: dana@acme.example\r\nSubject: Re: Your free report\r\n"
            b"In-Reply-To: <" + STEP_ID.encode() + b">\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="z"\r\n\r\n'
            b"--z\r\nContent-Type: text/plain\r\n\r\nSee the attached plans.\r\n"
            b"--z\r\nContent-Type: application/octet-stream; name=plans.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    raw = head + blob + b"\r\n--z--\r\n"
    assert len(raw) > 20_000_000
    # When it is classified
    msg, result = classify_bytes(raw)
    # Then it is read as the reply it is, from the first couple of megabytes only
    assert result.cls == InboundClass.HUMAN
    assert msg.new_text == "See the attached plans."


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _msg, result = classify_bytes(raw)
    assert result.cls in InboundClass
    assert result.subclass is None or isinstance(result.subclass, str)


_HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Content-Type", "Auto-Submitted",
                                 "Content-Transfer-Encoding", "Date", "Return-Path", "X-Autoreply"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_HEADER_NAMES, st.text(max_size=80)), max_size=8), st.text(max_size=2000))
def test_arbitrary_messages_never_raise(headers: list[tuple[str, str]], body: str) -> None:
    raw = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body
    _msg, result = classify_bytes(raw.encode("utf-8", "surrogatepass"))
    assert isinstance(result, Classification)
    assert result.cls in InboundClass


def test_classify_never_raises_on_a_broken_parsed_message() -> None:
    msg = parse_message(b"Subject: x\r\n\r\ny")
    broken = type(msg)(**{**msg.__dict__, "headers": None})
    assert classify(broken).cls == InboundClass.OTHER


# --- the command ------------------------------------------------------------------------------


def test_inbox_classify_command(tmp_path: Path) -> None:
    # Given two saved messages and one missing file
    ooo = tmp_path / "ooo.eml"
    ooo.write_bytes(mail("I am out of the office until 9 March.", subject="Out of office"))
    dsn_file = tmp_path / "bounce.eml"
    dsn_file.write_bytes(dsn("5.1.1", "failed", "smtp; 550 5.1.1 User unknown"))
    missing = tmp_path / "missing.eml"
    out, err = io.StringIO(), io.StringIO()
    # When they are classified as JSON
    code = run_classify([str(ooo), str(missing), str(dsn_file)], True, out, err)
    # Then the readable files are reported, the missing one is named, and the exit code is 1
    assert code == 1
    assert str(missing) in err.getvalue() and "Traceback" not in err.getvalue()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [set(r) for r in rows] == [{"file", "class", "subclass", "reason", "return_date"}] * 2
    assert rows[0]["class"] == "auto_reply" and rows[0]["return_date"] == "2026-03-09"
    assert (rows[1]["class"], rows[1]["subclass"]) == ("bounce", "hard")
    assert rows[1]["return_date"] is None


def test_inbox_classify_text_output(tmp_path: Path) -> None:
    path = tmp_path / "reply.eml"
    path.write_bytes(mail("Call me tomorrow." + QUOTE_WITH_FOOTER))
    out, err = io.StringIO(), io.StringIO()
    assert run_classify([str(path)], False, out, err) == 0
    assert out.getvalue().startswith(f"{path}: human (")
    assert err.getvalue() == ""
