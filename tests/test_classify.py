"""Unit tests for inbound parsing and classification, on messages built here."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email.message import EmailMessage
from email.utils import format_datetime

import pytest

from tests.classifykit import QUOTE_WITH_FOOTER, SENT, STEP_ID, mail, run
from worker.domain.classify import classify, classify_bytes, parse_message
from worker.domain.model import InboundClass

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
    assert result.subclass == "interested" and "can we talk" in result.reason
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
