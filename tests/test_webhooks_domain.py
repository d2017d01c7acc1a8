"""The webhook catalogue, bodies, endpoint selection and the retry schedule (pure; no waiting)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, date, datetime, timedelta

import pytest

from worker.domain import webhooks as wh
from worker.domain.model import Lead
from worker.domain.webhook_retry import check_secret, delay_s, next_attempt_at

AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
LEAD = Lead(email="ana@acme.example", id=7, first_name="Ana", last_name="Lopez",
            company="Acme", owner="rep@us.example", phone="+1 555",
            fields={"unsubscribe_token": "tok-SECRET", "api_token": "api-SECRET"})


def every_event() -> list[wh.WebhookEvent]:
    """One event of each type, as the flows will build them."""
    return [
        wh.lead_created(LEAD, AT, "import"),
        wh.lead_updated(LEAD, AT, ["company", "owner"]),
        wh.lead_enrolled(LEAD, AT, "welcome"),
        wh.mail_sent(LEAD, AT, "welcome", "intro", "<m1@us.example>", "Hello Ana"),
        wh.mail_failed(LEAD, AT, "welcome", "intro", 550, "5.1.1 user unknown"),
        wh.lead_replied(LEAD, AT, "welcome", "intro", "reply", "interested", "Sounds good"),
        wh.lead_auto_replied(LEAD, AT, "welcome", date(2026, 3, 9)),
        wh.lead_bounced(LEAD, AT, "welcome", "intro", "hard", "550 5.1.1 no such user"),
        wh.lead_unsubscribed(LEAD, AT, "link", "welcome"),
        wh.lead_suppressed(LEAD, AT, "hard_bounce"),
        wh.lead_erased("ab" * 32, AT),
        wh.enrollment_completed(LEAD, AT, "welcome", "nurture"),
        wh.task_created(LEAD, AT, "welcome", "call", 12, "call", "Call Ana", "rep@us.example",
                        AT + timedelta(days=1)),
        wh.task_done(LEAD, AT, "welcome", "call", 12, "left a voicemail"),
        wh.ping(AT, "crm"),
    ]


def test_every_catalogued_type_has_a_builder_and_the_standard_shape() -> None:
    # Given one event of each type
    events = every_event()
    # Then the catalogue is covered exactly, and each body is {type, timestamp, data}
    assert sorted(e.type.value for e in events) == sorted(wh.EVENT_TYPES)
    for event in events:
        body = json.loads(event.body_json())
        assert set(body) == {"type", "timestamp", "data"}
        assert body["type"] == event.type.value and body["timestamp"] == "2026-03-02T09:30:00.000Z"


def test_lead_events_carry_the_lead_and_the_campaign_and_step_where_they_apply() -> None:
    events = {e.type: json.loads(e.body_json())["data"] for e in every_event()}
    for kind, data in events.items():
        if kind in (wh.EventType.PING, wh.EventType.LEAD_ERASED):
            continue
        assert data["lead"] == {"id": 7, "email": "ana@acme.example", "first_name": "Ana",
                                "last_name": "Lopez", "company": "Acme",
                                "owner": "rep@us.example"}, kind
    assert events[wh.EventType.MAIL_SENT]["campaign"] == "welcome"
    assert events[wh.EventType.MAIL_SENT]["step"] == "intro"
    assert events[wh.EventType.LEAD_BOUNCED]["kind"] == "hard"
    assert events[wh.EventType.LEAD_BOUNCED]["server_words"] == "550 5.1.1 no such user"
    assert events[wh.EventType.LEAD_UNSUBSCRIBED]["how"] == "link"
    assert events[wh.EventType.LEAD_AUTO_REPLIED]["return_date"] == "2026-03-09"
    assert events[wh.EventType.ENROLLMENT_COMPLETED]["next_campaign"] == "nurture"
    assert events[wh.EventType.LEAD_REPLIED]["class"] == "reply"
    assert events[wh.EventType.LEAD_REPLIED]["subclass"] == "interested"


def test_bodies_never_carry_tokens_or_the_leads_free_fields() -> None:
    for event in every_event():
        text = event.body_json()
        assert "SECRET" not in text and "+1 555" not in text, event.type


def test_an_erased_lead_is_told_by_its_hash_alone() -> None:
    event = wh.lead_erased("ab" * 32, AT)
    assert json.loads(event.body_json())["data"] == {"email_hash": "ab" * 32}
    assert event.lead_id is None and "@" not in event.body_json()


def test_a_reply_text_is_cut_to_4000_characters() -> None:
    data = json.loads(wh.lead_replied(LEAD, AT, None, None, "reply", None, "é" * 5000)
                      .body_json())["data"]
    assert data["text"] == "é" * 4000 and data["text_truncated"] is True


def test_unsubscribe_how_is_one_of_link_reply_command_api() -> None:
    for how in ("link", "reply", "command", "api"):
        assert wh.lead_unsubscribed(LEAD, AT, how).body["data"]["how"] == how
    with pytest.raises(ValueError, match="link, reply, command, api"):
        wh.lead_unsubscribed(LEAD, AT, "carrier-pigeon")


def test_endpoints_are_chosen_by_their_events_filter_and_a_ping_only_when_addressed() -> None:
    filters = {"crm": None, "chat": frozenset({"lead.replied"}), "off": frozenset()}
    assert wh.endpoints_for(filters, "lead.replied") == ["chat", "crm"]
    assert wh.endpoints_for(filters, "mail.sent") == ["crm"]
    assert wh.endpoints_for(filters, "ping") == []


def test_the_schedule_is_5s_30s_2min_10min_1h_then_every_3h() -> None:
    assert [delay_s(n) for n in range(1, 9)] == [5, 30, 120, 600, 3600, 10800, 10800, 10800]


def test_jitter_moves_a_delay_by_at_most_ten_percent() -> None:
    assert delay_s(2, 0.0) == pytest.approx(27.0) and delay_s(2, 1.0) == pytest.approx(33.0)
    assert delay_s(6, 0.0) == pytest.approx(9720.0)


def test_an_event_is_retried_until_max_age_then_failed_with_a_last_try_on_the_deadline() -> None:
    # Given an event queued at AT, failing every time, the attempts follow the schedule
    queued, now, failures, tries = AT, AT, 0, []
    while True:
        failures += 1
        nxt = next_attempt_at(failures, queued, now, max_age_h=72)
        if nxt is None:
            break
        tries.append(nxt)
        now = nxt
    # Then the first waits are the schedule, the last try is at 72 h, then it is failed
    gaps = [(b - a).total_seconds() for a, b in zip([queued, *tries], tries, strict=False)]
    assert gaps[:6] == [5, 30, 120, 600, 3600, 10800]
    assert tries[-1] == queued + timedelta(hours=72) and now == tries[-1]
    assert 25 <= len(tries) <= 30


def test_a_secret_must_be_whsec_and_base64_of_24_to_64_bytes() -> None:
    good = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert check_secret(good) is None
    assert "whsec_" in (check_secret("sk_live_123") or "")
    assert "base64" in (check_secret("whsec_not base64!") or "")
    assert "24 to 64" in (check_secret("whsec_" + base64.b64encode(b"short").decode()) or "")
