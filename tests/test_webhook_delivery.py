"""The delivery loop end to end: the outbox (SQLite), the httpx poster and a real receiver on a
loopback port that verifies every signature with the standardwebhooks package."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.servers.webhook_receiver import BIG_BYTES, WebhookReceiver
from tests.webhookkit import SECRET, START, SetClock, migrated_engine
from worker import logs
from worker.adapters.db.webhook_store import WebhookStore
from worker.adapters.webhook_http import MAX_ANSWER_BYTES, WebhookPoster
from worker.config_webhooks import WebhookEndpointSettings
from worker.domain import webhooks as wh
from worker.domain.model import Lead
from worker.engine.webhooks import WebhookDelivery
from worker.secret import Secret


def lead(n: int) -> Lead:
    return Lead(email=f"l{n}@acme.example", id=n, first_name=f"L{n}", company="Acme")


class Rig:
    """Outbox + poster + loop aimed at one receiver, with a hand-moved clock."""

    def __init__(self, tmp_path: Path, receiver: WebhookReceiver, timeout_s: float = 2.0,
                 max_age_h: float = 72.0) -> None:
        self.clock = SetClock()
        self.receiver = receiver
        self.store = WebhookStore(migrated_engine(f"sqlite:///{tmp_path}/w.db"), {"crm": None},
                                  self.clock)
        self.poster = WebhookPoster()
        endpoint = WebhookEndpointSettings(url=receiver.url, timeout_s=timeout_s,
                                           secret=Secret(SECRET))
        self.loop = WebhookDelivery(self.store, self.poster, {"crm": endpoint}, self.clock,
                                    max_age_h=max_age_h, poll_interval_s=0.05,
                                    jitter=lambda: 0.5)

    async def drain(self, step_s: float = 5.0, rounds: int = 200) -> None:
        """Deliver, moving the clock, until nothing is pending (or give up)."""
        for _ in range(rounds):
            if self.store.pending_count() == 0:
                return
            await self.loop.deliver_due()
            self.clock.advance(step_s)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(SECRET) as r:
        yield r


@pytest.fixture
async def rig(tmp_path: Path, receiver: WebhookReceiver) -> AsyncIterator[Rig]:
    rig = Rig(tmp_path, receiver)
    yield rig
    await rig.poster.close()


async def test_events_arrive_signed_and_verified_with_the_stored_body(rig: Rig) -> None:
    # Given three events in the outbox
    events = [wh.lead_created(lead(1), START, "import"), wh.lead_created(lead(2), START),
              wh.lead_bounced(lead(3), START, "c", "s", "hard", "550 no such user")]
    rig.store.enqueue_now(events)
    # When the loop runs one batch
    assert await rig.loop.deliver_due() == 3
    # Then the receiver verified each signature and got the exact bodies
    got = rig.receiver.delivered()
    assert len(got) == 3 and all(r.verified for r in got)
    assert sorted(r.body.decode() for r in got) == sorted(e.body_json() for e in events)
    assert all(r.webhook_id.startswith("msg_") and
               r.headers["webhook-signature"].startswith("v1,") for r in got)
    assert rig.store.stats()["crm"].delivered == 3


async def test_a_refused_event_is_retried_on_schedule_with_the_same_webhook_id(rig: Rig) -> None:
    rig.store.enqueue_now([wh.mail_sent(lead(1), START, "c", "s", "<m@x>")])
    rig.receiver.mode = "refuse"
    await rig.loop.deliver_due()
    # Not due again before about 5 s
    rig.clock.advance(4)
    assert await rig.loop.deliver_due() == 0
    rig.receiver.mode = "ok"
    rig.clock.advance(1.5)
    assert await rig.loop.deliver_due() == 1
    first, second = rig.receiver.received
    assert (first.answered, second.answered) == (500, 200)
    assert first.webhook_id == second.webhook_id and first.body == second.body
    assert first.verified and second.verified
    assert rig.store.stats()["crm"].last_error == "HTTP 500: refused"


async def test_a_leads_events_keep_their_order_while_the_receiver_refuses(rig: Rig) -> None:
    # Given two leads with three events each, and a receiver that refuses for a while
    rig.store.enqueue_now([e for kind in ("created", "enrolled", "sent") for n in (1, 2)
                           for e in [{"created": wh.lead_created(lead(n), START),
                                      "enrolled": wh.lead_enrolled(lead(n), START, "c"),
                                      "sent": wh.mail_sent(lead(n), START, "c", "s", f"<{n}>")
                                      }[kind]]])
    rig.receiver.mode = "refuse"
    for _ in range(4):
        await rig.loop.deliver_due()
        rig.clock.advance(200)
    # Only each lead's first event was ever tried
    assert {r.json()["type"] for r in rig.receiver.received} == {"lead.created"}
    rig.receiver.mode = "ok"
    await rig.drain(step_s=600)
    # Then each lead's events were delivered in the order they happened
    for n in (1, 2):
        kinds = [r.json()["type"] for r in rig.receiver.delivered()
                 if r.json()["data"]["lead"]["id"] == n]
        assert kinds == ["lead.created", "lead.enrolled", "mail.sent"]


async def test_a_receiver_down_then_back_loses_nothing(rig: Rig) -> None:
    # Given the receiver down while 40 events of 8 leads pile up
    rig.receiver.down()
    rig.store.enqueue_now([wh.lead_updated(lead(n % 8), START, [f"f{i}"]) for n, i in
                           zip(range(40), range(40), strict=True)])
    for _ in range(5):
        await rig.loop.deliver_due()
        rig.clock.advance(60)
    assert rig.receiver.received == []
    assert "ConnectError" in (rig.store.stats()["crm"].last_error or "")
    # When it comes back
    rig.receiver.up()
    await rig.drain(step_s=3600)
    # Then every event arrived once, verified, each lead's in order
    got = rig.receiver.delivered()
    assert len(got) == 40 and len({r.webhook_id for r in got}) == 40
    for n in range(8):
        fields = [r.json()["data"]["changed"][0] for r in got
                  if r.json()["data"]["lead"]["id"] == n]
        assert fields == sorted(fields, key=lambda f: int(f[1:]))


async def test_a_redirect_is_not_followed(rig: Rig) -> None:
    rig.receiver.mode = "redirect"
    rig.store.enqueue_now([wh.lead_created(lead(1), START)])
    await rig.loop.deliver_due()
    assert [r.path for r in rig.receiver.received] == ["/hook"]
    stats = rig.store.stats()["crm"]
    assert stats.pending == 1 and stats.last_error == "HTTP 302: redirect not followed"


async def test_a_1mb_answer_is_read_only_to_64kb(receiver: WebhookReceiver) -> None:
    receiver.mode = "big"
    poster = WebhookPoster()
    try:
        attempt = await poster.post(endpoint="crm", url=receiver.url, secret=SECRET,
                                    webhook_id="msg_big", body="{}", timeout_s=5)
    finally:
        await poster.close()
    assert attempt.delivered and BIG_BYTES > MAX_ANSWER_BYTES
    assert attempt.answer_bytes == MAX_ANSWER_BYTES


async def test_a_receiver_that_hangs_is_a_timeout_and_a_slow_one_is_waited_for(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    rig = Rig(tmp_path, receiver, timeout_s=0.5)
    try:
        receiver.mode, receiver.hang_s = "hang", 5.0
        rig.store.enqueue_now([wh.lead_created(lead(1), START)])
        await rig.loop.deliver_due()
        assert rig.store.stats()["crm"].last_error == "timed out after 0.5 s"
        receiver.mode, receiver.slow_s = "slow", 0.2
        rig.clock.advance(6)
        await rig.loop.deliver_due()
        assert rig.store.stats()["crm"].delivered == 1
    finally:
        await rig.poster.close()


async def test_an_event_refused_past_max_age_is_failed_not_dropped(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    rig = Rig(tmp_path, receiver, max_age_h=1.0)
    try:
        receiver.mode = "refuse"
        rig.store.enqueue_now([wh.lead_created(lead(1), START)])
        await rig.drain(step_s=300, rounds=30)
        stats = rig.store.stats()["crm"]
        # Tried at 0, ~5 s, ~35 s, ~2.6 min, ~12.6 min and on the 1 h deadline: then failed
        assert (stats.pending, stats.failed) == (0, 1)
        assert len(receiver.received) == 6
    finally:
        await rig.poster.close()


@pytest.fixture
def worker_logging(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """The worker's own logging setup at DEBUG, captured by caplog, undone afterwards."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level,
             {n: logging.getLogger(n).level for n in ("httpx", "httpcore")})
    logs.setup("DEBUG", "text", [SECRET])
    root.addHandler(caplog.handler)
    try:
        yield caplog
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


async def test_no_secret_or_url_in_logs(rig: Rig, worker_logging: pytest.LogCaptureFixture) -> None:
    caplog = worker_logging
    rig.store.enqueue_now([wh.lead_created(lead(1), START)])
    rig.receiver.down()
    await rig.loop.deliver_due()
    rig.receiver.up()
    rig.clock.advance(10)
    await rig.loop.deliver_due()
    text = caplog.text
    assert "action=webhook_delivered endpoint=crm" in text
    assert SECRET not in text and SECRET[6:] not in text and rig.receiver.url not in text


async def test_run_delivers_until_stopped(rig: Rig) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(rig.loop.run(stop))
    rig.store.enqueue_now([wh.ping(START, "crm")], only="crm")
    rig.loop.wake()
    got = await asyncio.to_thread(rig.receiver.wait_for, 1, 10.0)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert json.loads(got[0].body)["type"] == "ping" and got[0].verified
