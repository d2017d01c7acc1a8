"""Footers, signatures and disclaimers under a reply are not the lead's words (issue 11).

A list footer ("To unsubscribe send an email to ...") or a corporate disclaimer ("if you no
longer wish to receive ..., unsubscribe ...") under an unquoted reply turned human replies
into unsubscribe requests; a reply through a group (``List-Id``, ``Precedence: list``) was
classed ``other``. The request itself, in the lead's own words, still counts.
"""

from __future__ import annotations

import pytest

from tests.classifykit import QUOTE_WITH_FOOTER, mail, run
from worker.domain.model import InboundClass
from worker.domain.reply_text import own_words

HUMAN_WITH_BOILERPLATE = [
    # A Google Groups footer under an unquoted reply
    "Sounds good, let's talk on Thursday.\n\n--\nYou received this message because you are "
    "subscribed to the Google Groups \"Ops\" group.\nTo unsubscribe from this group and stop "
    "receiving emails from it, send an email to ops+unsubscribe@googlegroups.example.\n",
    # Mailman footer after a rule
    "Can you send the price list?\n\nThanks\nMarta\n"
    "_______________________________________________\nsales mailing list\n"
    "To unsubscribe send an email to sales-leave@lists.example\n",
    # A corporate disclaimer with an unsubscribe sentence, no delimiter
    "Thank you, we will look at it next week.\n\nRobert Klein\nPlant Manager\n\n"
    "CONFIDENTIALITY NOTICE: This message may contain privileged information. If you no longer "
    "wish to receive commercial email from Klein, reply with UNSUBSCRIBE or visit "
    "klein.example/unsubscribe.\n",
    # The list footer as the first line after the text
    "Who gave you my address?\nTo unsubscribe, e-mail list-request@lists.example\n",
    # German and French disclaimers
    "Danke, wir melden uns.\n\nMit freundlichen Grüßen\nAnna Weber\n\nDiese E-Mail ist "
    "vertraulich. Sie können sich jederzeit von unserem Newsletter abmelden.\n",
    "Merci, je transmets.\n\nCordialement,\nOlivier\n\nCe message est confidentiel. Vous pouvez "
    "vous désinscrire de nos communications à tout moment.\n",
    # A signature after the delimiter
    "Interesting, tell me more.\n-- \nJo | Ops\nUnsubscribe from our newsletter: jo.example/u\n",
    # A sign-off, then a signature line that says opt out
    "Not for us, thanks.\n\nRegards,\nPriya\nTo opt out of our updates reply STOP\n",
]

UNSUBSCRIBE = [
    ("Not interested. Please remove me from your list.", "Re: Your free report"),
    ("Kindly remove our email id from your database and do not send further mails.\n\n"
     "Regards,\nDeepak", "Re: Your free report"),
    ("No thank you.", "RE: Your free report - UNSUBSCRIBE"),
    ("Nope.", "Re: Your free report [remove me]"),
    ("Kein Bedarf, danke.", "AW: Ihr Bericht - bitte aus Verteiler löschen"),
    ("Pas intéressé. Merci de ne plus m'écrire.\n\nCordialement,\nB. Lambert", "RE : Rapport"),
    ("Por favor, dejen de enviarme correos.", "Re: Informe"),
    ("Proszę nie wysyłać więcej wiadomości.", "Re: Raport"),
    ("Please unsubscribe me.\n\nThis email is confidential and intended for the named "
     "recipient only.", "Re: Your free report"),
    # Requests that use the words footers use, on a line of their own after a greeting
    ("Hi Dana,\n\nPlease remove me from your mailing list.\n\nThanks", "Re: Your free report"),
    ("Hello,\nI never subscribed to the newsletter, take me off it.", "Re: Your free report"),
    ("Hi,\nI want to unsubscribe from this list.\nRegards,\nBo", "Re: Your free report"),
    ("Hi,\nThanks,\nremove me from your list", "Re: Your free report"),
]


@pytest.mark.parametrize("body", HUMAN_WITH_BOILERPLATE)
def test_boilerplate_under_a_reply_is_not_a_request(body: str) -> None:
    # Given a person's reply with a list footer, disclaimer or signature that says unsubscribe
    # When it is classified
    verdict = run(mail(body + QUOTE_WITH_FOOTER))
    # Then it is the person's reply, not an unsubscribe request
    assert verdict.cls is InboundClass.HUMAN, verdict.reason


@pytest.mark.parametrize(("body", "subject"), UNSUBSCRIBE)
def test_the_leads_own_request_still_counts(body: str, subject: str) -> None:
    verdict = run(mail(body + QUOTE_WITH_FOOTER, subject))
    assert verdict.cls is InboundClass.UNSUBSCRIBE, verdict.reason


def test_own_words_stop_at_the_disclaimer_and_sign_off() -> None:
    text = ("Hi Dana,\n\nPlease call me on Friday.\n\nBest regards,\nAl Smith\nCEO\n\n"
            "This e-mail is confidential.")
    assert own_words(text) == "Hi Dana,\n\nPlease call me on Friday."


@pytest.mark.parametrize("headers", [
    {"List-Id": "<ops.groups.example>", "Precedence": "list"},
    {"List-Id": "<sales.lists.example>", "List-Unsubscribe": "<mailto:leave@lists.example>",
     "List-Post": "<mailto:sales@lists.example>", "Precedence": "list"},
])
@pytest.mark.parametrize("reply", [True, False])
def test_a_reply_through_a_list_or_group_is_read_as_a_reply(headers: dict[str, str],
                                                             reply: bool) -> None:
    # Given an unsubscribe request and a human reply that went through a group
    unsub = run(mail("Please unsubscribe me.", headers=headers, reply=reply))
    human = run(mail("Thanks, sounds good. Call me Monday.", headers=headers, reply=reply))
    # Then the list headers alone do not make them other
    assert unsub.cls is InboundClass.UNSUBSCRIBE, unsub.reason
    assert human.cls is InboundClass.HUMAN, human.reason
