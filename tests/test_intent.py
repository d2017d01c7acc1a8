"""Unit tests of the reply-intent reader (issue 14 item 1): each intent, precedence, every
resume_on form, referrals, the stop-mail boundary and the "Bad input" rules. Pure domain."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from worker.domain.inbound_parse import parse_message
from worker.domain.intent import Intent, intent_of_message, read_intent
from worker.domain.intent_dates import MAX_AHEAD_DAYS, find_resume_date
from worker.domain.intent_text import lead_text

CET = timezone(timedelta(hours=1))
WED = datetime(2026, 10, 14, 10, 0, tzinfo=timezone(timedelta(hours=2)))  # ISO week 42
OURS = ["dana@acme.example"]
LEAD = "lead@shop.example"


def read(text: str, subject: str = "Re: hello", when: datetime = WED,
         cc: tuple[tuple[str, str], ...] = ()) -> Intent:
    return read_intent(text, subject, when, LEAD, OURS, cc)


@pytest.mark.parametrize(("text", "intent"), [
    ("Yes", "interested"),
    ("Call me.", "interested"),
    ("What would this cost for 12 users?", "interested"),
    ("Thursday at 2pm works for me.", "interested"),
    ("Wir hätten Interesse, bitte schicken Sie ein Angebot zu.", "interested"),
    ("Not right now, maybe later.", "not_now"),
    ("Melden Sie sich gern in KW 12 noch einmal.", "not_now"),
    ("No thanks, we already use another tool.", "not_interested"),
    ("Kein Bedarf.", "not_interested"),
    ("I'm not the right person for this.", "wrong_person"),
    ("You want my boss, not me.", "wrong_person"),
    ("Talk to Shane in the office, he sorts all that.", "referral"),
    ("Thanks, got it.", "neutral"),
    ("Who gave you my address?", "neutral"),
])
def test_each_intent(text: str, intent: str) -> None:
    got = read(text)
    assert got.intent == intent, got.reason
    assert got.reason  # the deciding phrase is named


def test_negated_interest_is_a_decline() -> None:
    assert read("We are not interested in your services.").intent == "not_interested"
    assert read("Nous ne sommes pas intéressés.").intent == "not_interested"


@pytest.mark.parametrize(("text", "intent"), [
    # interested > referral: a demo request that loops in a colleague
    ("Looping in Mark (cc'd). We'd like to see a demo.", "interested"),
    # referral > not_interested
    ("We're not interested, but try greg@olsen-law.example", "referral"),
    # referral > not_now
    ("I'm on leave until June, please speak to hannah@shop.example", "referral"),
    # not_now > wrong_person / not_interested
    ("No. Come back next year.", "not_now"),
    # wrong_person > not_interested
    ("I'm not the decision maker, and I doubt we'd need it anyway.", "wrong_person"),
])
def test_precedence(text: str, intent: str) -> None:
    assert read(text).intent == intent


@pytest.mark.parametrize(("text", "when", "want"), [
    ("Please come back to me after 14 March.", WED, date(2027, 3, 15)),
    ("Circle back from 1/18.", WED, date(2027, 1, 18)),
    ("Merci de me recontacter à partir du 8 février.", WED, date(2027, 2, 8)),
    ("Mi ricontatti dopo il 10 gennaio.", WED, date(2027, 1, 11)),
    ("Please reach out on January 12th.", WED, date(2027, 1, 12)),
    ("Give us a buzz in Feb.", WED, date(2027, 2, 1)),
    ("Our new financial year starts in April, we can discuss then.", WED, date(2027, 4, 1)),
    ("Budget only opens up in Q2. Happy to revisit then.", WED, date(2027, 4, 1)),
    ("Could you contact me next quarter instead?", WED, date(2027, 1, 1)),
    ("Bitte kommen Sie im nächsten Quartal wieder auf mich zu.", WED, date(2027, 1, 1)),
    ("Can you check back in 6 weeks?", WED, date(2026, 11, 25)),
    ("Kun je over 4 weken nog eens mailen?", WED, date(2026, 11, 11)),
    ("Proszę odezwać się za dwa miesiące.", WED, date(2026, 12, 14)),
    ("Can you ping me again in 10 days?", WED, date(2026, 10, 24)),
    ("Reach out next week?", WED, date(2026, 10, 19)),
    ("Try me next month when things quieten down.", WED, date(2026, 11, 1)),
    ("Come back next year.", WED, date(2027, 1, 1)),
    ("We're frozen until the new fiscal year, get back in touch then.", WED, date(2027, 1, 1)),
    ("Volgend jaar wil ik er best naar kijken.", WED, date(2027, 1, 1)),
    ("Drop me a line after the summer.", WED, date(2027, 9, 1)),
    ("Escríbeme después del verano.", WED, date(2027, 9, 1)),
    ("Revenez vers moi après les fêtes.", datetime(2026, 12, 14, 11, tzinfo=CET),
     date(2027, 1, 4)),
    ("Melden Sie sich gern in KW 12 noch einmal.", WED, date(2027, 3, 22)),
    ("Hör av dig vecka 10 så tar vi det då.", WED, date(2027, 3, 8)),
    ("Skriv igen i uge 6.", WED, date(2027, 2, 8)),
])
def test_resume_on_forms(text: str, when: datetime, want: date) -> None:
    got = read(text, when=when)
    assert got.intent == "not_now", got.reason
    assert got.resume_on == want, got.reason


def test_no_date_named_gives_none() -> None:
    got = read("Not a no, just not now. I'll reach out when the dust settles.")
    assert got.intent == "not_now"
    assert got.resume_on is None


def test_resume_on_capped_at_two_years() -> None:
    got = read("Please check back in 5 years.")
    assert got.resume_on == WED.date() + timedelta(days=MAX_AHEAD_DAYS)
    far = find_resume_date("come back on 1 March 2031", WED.date())
    assert far is not None and far[0] == WED.date() + timedelta(days=MAX_AHEAD_DAYS)


def test_interested_reply_with_a_month_has_no_resume_on() -> None:
    got = read("Sounds good - let's pick this up properly in January.")
    assert got.intent == "interested"
    assert got.resume_on is None


def _message(body: str, cc: str = "", subject: str = "Re: Quick question") -> bytes:
    head = (f"From: Lead <{LEAD}>\nTo: Dana <dana@acme.example>\n"
            + (f"Cc: {cc}\n" if cc else "")
            + f"Subject: {subject}\nDate: Wed, 14 Oct 2026 10:00:00 +0200\n"
            "Message-ID: <m1@shop.example>\nContent-Type: text/plain; charset=utf-8\n\n")
    return (head + body).encode()


QUOTE = ("\n\nOn Mon, 12 Oct 2026 at 09:00, Dana <dana@acme.example> wrote:\n"
         "> Would a call on 24 December work? Or talk to sam@other.example\n"
         "> Unsubscribe: https://nurture.test/u/PLACEHOLDER\n")


def test_date_only_in_quote_or_signature_is_no_date() -> None:
    body = ("We're migrating systems. Once that's done I'd be happy to take another look.\n\n"
            "Kind regards,\nFiona\n\nPlease note the practice will be closed from 24 December "
            "to 4 January inclusive." + QUOTE)
    got = intent_of_message(parse_message(_message(body)), OURS)
    assert got.intent == "not_now"
    assert got.resume_on is None


def test_signature_address_and_quoted_address_are_not_referrals() -> None:
    body = "Thanks, got it.\n\nRegards,\nAmy\namy.private@shop.example" + QUOTE
    got = intent_of_message(parse_message(_message(body)), OURS)
    assert got.intent == "neutral"
    assert got.referrals == ()


def test_referral_to_own_or_our_address_creates_nothing() -> None:
    assert read(f"Please write to {LEAD} instead.").referrals == ()
    assert read("Talk to tom@acme.example about it.").referrals == ()
    got = read(f"Contact Jan at jan@shop.example or me at {LEAD}.")
    assert got.referrals == ("jan@shop.example",)


def test_twenty_addresses_give_at_most_five() -> None:
    many = " ".join(f"p{i}@shop.example" for i in range(20))
    got = read(f"Please contact our branch managers: {many}")
    assert got.intent == "referral"
    assert got.referrals == tuple(f"p{i}@shop.example" for i in range(5))


def test_referrals_are_lower_cased_and_cc_needs_an_introduction() -> None:
    got = read("Please reach out to Linda at Linda.Moreno@Shop.example.")
    assert got.referrals == ("linda.moreno@shop.example",)
    cc = (("maria@shop.example", "Maria Gonzalez"),)
    assert read("+Maria (cc'd), who owns this.", cc=cc).referrals == ("maria@shop.example",)
    assert read("Thanks, got it.", cc=cc).intent == "neutral"


def test_named_referral_without_address_has_no_referrals() -> None:
    got = read("You'll want to talk to Rebecca Tran, our Director of Admissions.")
    assert got.intent == "referral"
    assert got.referrals == ()
    # a department or "my boss" is not a person
    assert read("Please check with the concerned department.").intent == "wrong_person"


def test_stop_request_in_text_or_subject_but_not_in_boilerplate() -> None:
    assert read("Not interested. Please remove me from your list.").stop_request
    assert read("Nope.", subject="Re: Client follow-ups [remove me]").stop_request
    assert read("No thank you.", subject="RE: Pre-arrival - UNSUBSCRIBE").stop_request
    assert read("Nie jestem zainteresowany. Proszę nie wysyłać więcej wiadomości.").stop_request
    assert not read("Please stop calling these quick questions. No, we don't need this.").stop_request
    body = ("No thank you, this isn't something we need.\n\nKind regards,\nLaura\n\n"
            "This email is confidential. If you would prefer not to receive updates, you can "
            "unsubscribe at shop.example/preferences or reply with 'opt out'.")
    assert not intent_of_message(parse_message(_message(body)), OURS).stop_request


def test_inline_answers_are_read() -> None:
    full = ("Replies below\n\nOn Tue, 19 Jan 2027, Dana wrote:\n> Is this a priority?\n\n"
            "Not really.\n\n> Would a call next week work?\n\nTiming's bad. Try me again once "
            "we've hired someone.\n\nTanya\n")
    assert "Timing's bad" in lead_text("Replies below", full)
    got = intent_of_message(parse_message(_message(full)), OURS)
    assert got.intent == "not_now"
    assert got.resume_on is None  # "next week" is in the quoted question only


def test_garbage_never_raises() -> None:
    assert read_intent("\x00\ufffd" * 50, "", None, None, []).intent == "neutral"
    assert read("Come back next year.", when=None).resume_on is None  # type: ignore[arg-type]
