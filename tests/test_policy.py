"""Pure decisions: backoff, caps and warm-up, SMTP answer classes, mailbox routing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from tests.workspace import REPO
from worker.config import load_settings
from worker.domain import policy
from worker.domain.campaigns import Campaign
from worker.domain.model import Lead
from worker.mailer import Mailboxes

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_backoff_grows_with_jitter_and_is_capped() -> None:
    rng = random.Random(7)
    waits = [policy.backoff_s(n, 60, 3600, rng) for n in range(1, 10)]
    assert 30 <= waits[0] <= 60 and 60 <= waits[1] <= 120
    assert all(w <= 3600 for w in waits) and waits[-1] >= 1800


@pytest.mark.parametrize("code,text,throttle", [
    (421, "4.7.0 Try again later", True), (454, "4.7.1 Relay access denied", True),
    (451, "4.7.28 Our system has detected an unusual rate", True),
    (451, "4.3.0 Local error", False), (452, "4.2.2 Mailbox full", False),
])
def test_throttling_answers(code: int, text: str, throttle: bool) -> None:
    assert policy.is_throttle(code, text) is throttle


@pytest.mark.parametrize("code,text,hard", [
    (550, "5.1.1 <x@y>: Recipient address rejected: User unknown", True),
    (550, "5.7.1 Message rejected as spam", False),
    (552, "5.2.2 Mailbox full", False), (550, "No such user here", True),
    (553, "5.1.3 Bad recipient address syntax", True), (554, "Transaction failed", False),
])
def test_recipient_rejections(code: int, text: str, hard: bool) -> None:
    assert policy.is_recipient_rejection(code, text) is hard


def test_caps_and_warm_up() -> None:
    # uncapped
    assert policy.allowance(0, 0, 0, 0, 10_000, 50_000, None, NOW) > 1_000_000
    # hourly and daily caps
    assert policy.allowance(100, 0, 0, 0, 98, 500, NOW, NOW) == 2
    assert policy.allowance(0, 500, 0, 0, 0, 499, NOW, NOW) == 1
    assert policy.allowance(0, 500, 0, 0, 0, 600, NOW, NOW) == 0
    # warm-up: 50 on day one, rising linearly to 500 over 10 days
    first = NOW - timedelta(days=0)
    assert policy.warmup_cap(50, 500, 10, first, NOW) == 50
    assert policy.warmup_cap(50, 500, 10, NOW - timedelta(days=5), NOW) == 275
    assert policy.warmup_cap(50, 500, 10, NOW - timedelta(days=30), NOW) == 500
    assert policy.allowance(0, 500, 50, 10, 0, 40, first, NOW) == 10


def test_mailbox_routing_by_sender_name_owner_or_address() -> None:
    settings = load_settings(REPO / "config" / "nurture.toml", environ={
        "NURTURE_MAILBOXES__SALES__ADDRESS": "Sales Team <sales@acme.example>",
        "NURTURE_MAILBOXES__DANA__ADDRESS": "Dana Rep <dana@acme.example>"})
    boxes = Mailboxes(settings)
    camp = Campaign("c", "c", "C", "sequence", "Marketing <hello@acme.example>")
    assert boxes.route(camp, Lead("a@x.test")).mailbox == "default"
    owned = boxes.route(camp, Lead("a@x.test", owner="DANA@acme.example"))
    assert (owned.mailbox, owned.from_name, owned.from_addr) == ("dana", "Dana Rep",
                                                                 "dana@acme.example")
    named = Campaign("c", "c", "C", "sequence", "sales")
    assert boxes.route(named, Lead("a@x.test", owner="dana@acme.example")).mailbox == "sales"
    by_address = Campaign("c", "c", "C", "sequence", "Dana <dana@acme.example>")
    assert boxes.route(by_address, Lead("a@x.test")).mailbox == "dana"
