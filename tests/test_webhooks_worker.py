"""Webhooks delivered by a running worker (its supervised side task): the HTTP API's intake
and a one-click unsubscribe over HTTP, real mail to aiosmtpd, a receiver that verifies each
signature; retries keep their id; `nurture webhooks list / test / replay`; the metrics."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.httpkit import AUTH, GMAIL_ONE_CLICK, Worker, start_worker, unsubscribe_url
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.webhook_receiver import Received, WebhookReceiver
from tests.webhookkit import SECRET
from worker.commands import webhooks as cmd


@pytest.fixture
async def hooked(tmp_path: Path) -> AsyncIterator[tuple[Worker, WebhookReceiver]]:
    receiver = WebhookReceiver(SECRET).up()
    smtp = ScriptedSmtpServer().start()
    worker = await start_worker(tmp_path, smtp, WEBHOOKS__CRM__URL=receiver.url,
                                WEBHOOKS__CRM__SECRET=SECRET)
    try:
        yield worker, receiver
    finally:
        await worker.stop()
        smtp.close()
        receiver.down()


async def arrived(receiver: WebhookReceiver, kind: str, count: int = 1) -> list[Received]:
    """Wait (bounded) until ``count`` verified events of ``kind`` were delivered."""
    async with asyncio.timeout(15):
        while True:
            got = [r for r in receiver.delivered() if r.json()["type"] == kind]
            if len(got) >= count:
                return got
            await asyncio.sleep(0.05)


def command(fn: Any, worker: Worker, **args: Any) -> tuple[int, str]:
    """Run a `nurture webhooks` command on the worker's settings and (fake) clock."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.MonkeyPatch.context() as mp:
        mp.setattr("worker.app.SystemClock", lambda: worker.clock)
        code = fn(argparse.Namespace(**args), lambda: worker.app.settings)
    return code, out.getvalue()


async def recorded_error(worker: Worker) -> dict[str, Any]:
    """Wait until the worker recorded a failed attempt (before moving its clock on)."""
    async with asyncio.timeout(15):
        while True:
            _code, out = await asyncio.to_thread(command, cmd.list_, worker, json=True)
            (row,) = json.loads(out)["endpoints"]
            if row["last_error"]:
                return row  # type: ignore[no-any-return]
            await asyncio.sleep(0.05)


async def test_api_intake_send_and_one_click_unsubscribe_reach_the_receiver(
        hooked: tuple[Worker, WebhookReceiver]) -> None:
    worker, receiver = hooked
    # Given a lead posted to the API: created, enrolled, and its first mail sent by SMTP
    r = await worker.client.post("/api/leads", headers=AUTH,
                                 json={"email": "stop@example.test", "first_name": "Sam",
                                       "campaign": "hello"})
    assert r.status_code == 201
    (mail,) = await worker.mails(1)
    (created,) = await arrived(receiver, "lead.created")
    (enrolled,) = await arrived(receiver, "lead.enrolled")
    (sent,) = await arrived(receiver, "mail.sent")
    assert created.json()["data"]["lead"]["first_name"] == "Sam"
    assert enrolled.json()["data"]["campaign"] == "hello"
    assert sent.json()["data"]["message_id"] in mail.data.decode()
    # When the lead unsubscribes with the one-click link over HTTP
    r = await worker.client.post(unsubscribe_url(mail), headers=GMAIL_ONE_CLICK,
                                 content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 200
    # Then the receiver gets lead.unsubscribed, how=link, signed and verified
    (unsub,) = await arrived(receiver, "lead.unsubscribed")
    assert unsub.verified and unsub.json()["data"]["how"] == "link"
    # And each lead's events came in the order they happened
    order = [x.json()["type"] for x in receiver.delivered()]
    assert order == ["lead.created", "lead.enrolled", "mail.sent", "lead.unsubscribed"]
    # And `nurture webhooks list` counts them; the metrics count the deliveries
    code, out = await asyncio.to_thread(command, cmd.list_, worker, json=True)
    (row,) = json.loads(out)["endpoints"]
    assert (code, row["endpoint"], row["delivered"], row["pending"]) == (0, "crm", 4, 0)
    metrics = (await worker.client.get("/metrics")).text
    assert 'nurture_webhook_deliveries_total{endpoint="crm",outcome="delivered"} 4.0' in metrics
    assert 'nurture_webhook_backlog{endpoint="crm"} 0.0' in metrics


def outbox_count(worker: Worker, kind: str) -> int:
    """How many events of ``kind`` the outbox holds (delivered or not)."""
    with worker.app.db.engine.connect() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM webhook_outbox WHERE type = ?",
                                        (kind,)).scalar_one())


async def test_an_unsubscribe_through_the_api_reaches_the_receiver_as_how_api(
        hooked: tuple[Worker, WebhookReceiver]) -> None:
    worker, receiver = hooked
    # Given a lead posted to the API and enrolled
    r = await worker.client.post("/api/leads", headers=AUTH,
                                 json={"email": "Pat@Example.test", "campaign": "hello"})
    assert r.status_code == 201
    await arrived(receiver, "lead.enrolled")
    url = "/api/leads/pat%40example.test/unsubscribe"
    # When the API is asked without a token, or about an unknown lead
    assert (await worker.client.post(url)).status_code == 401
    r = await worker.client.post("/api/leads/nobody%40example.test/unsubscribe", headers=AUTH)
    assert r.status_code == 404
    r = await worker.client.post("/api/leads/not-an-address/unsubscribe", headers=AUTH)
    assert r.status_code == 400 and "email" in r.json()["errors"]
    # When the lead is unsubscribed through the API, twice
    first = await worker.client.post(url, headers=AUTH)
    again = await worker.client.post(url, headers=AUTH)
    # Then both answer 200, the second changing nothing
    assert (first.status_code, first.json()) == (200, {"email": "pat@example.test",
                                                       "unsubscribed": True, "changed": True})
    assert (again.status_code, again.json()["changed"]) == (200, False)
    lead = await worker.db(worker.app.db.lead_by_email, "pat@example.test")
    rows = await worker.db(worker.app.db.enrollments_of, lead.id)
    assert [row.status for row in rows] == ["unsubscribed"]
    # And the receiver gets one lead.unsubscribed, how=api, signed and verified
    (unsub,) = await arrived(receiver, "lead.unsubscribed")
    assert unsub.verified and unsub.json()["data"]["how"] == "api"
    assert unsub.json()["data"]["lead"]["email"] == "pat@example.test"
    # And the second call wrote nothing more to deliver
    assert await worker.db(outbox_count, worker, "lead.unsubscribed") == 1


async def test_a_refused_event_is_retried_with_the_same_id_then_replayed(
        hooked: tuple[Worker, WebhookReceiver]) -> None:
    worker, receiver = hooked
    # Given a receiver that answers 500
    receiver.mode = "refuse"
    r = await worker.client.post("/api/leads", headers=AUTH, json={"email": "a@example.test"})
    assert r.status_code == 201
    first = (await asyncio.to_thread(receiver.wait_for, 1))[0]
    assert first.verified and first.answered == 500
    await recorded_error(worker)
    # When it is back and the retry is due (about 5 s later on the worker's clock)
    receiver.mode = "ok"
    worker.clock.advance(seconds=10)
    (again,) = await arrived(receiver, "lead.created")
    # Then the retry carries the same webhook-id and the same body
    assert again.webhook_id == first.webhook_id and again.body == first.body
    # And `webhooks list` shows the last error; `/healthz` is not degraded (not an hour yet)
    _code, out = await asyncio.to_thread(command, cmd.list_, worker, json=False)
    assert "HTTP 500" in out and "delivered 1" in out
    health = (await worker.client.get("/healthz")).json()
    assert health["status"] == "ok"
    # When the endpoint's events are replayed: the same id once more
    code, out = await asyncio.to_thread(command, cmd.replay, worker, name="crm", since=None,
                                        failed=False)
    assert code == 0 and "1 event(s)" in out
    replayed = await arrived(receiver, "lead.created", 2)
    assert replayed[-1].webhook_id == first.webhook_id
    # And `webhooks test` posts a ping and prints the answer
    code, out = await asyncio.to_thread(command, cmd.test, worker, name="crm")
    assert code == 0 and "delivered (HTTP 200" in out
    assert receiver.received[-1].json()["type"] == "ping" and receiver.received[-1].verified


async def test_an_endpoint_failing_for_an_hour_shows_on_healthz(
        hooked: tuple[Worker, WebhookReceiver]) -> None:
    worker, receiver = hooked
    receiver.down()  # refused connections
    r = await worker.client.post("/api/leads", headers=AUTH, json={"email": "b@example.test"})
    assert r.status_code == 201
    await recorded_error(worker)
    for _ in range(6):  # 5 s, 30 s, 2 min, 10 min, 1 h: each retry fails
        worker.clock.advance(minutes=20)
        await asyncio.sleep(1.2)
    health = (await worker.client.get("/healthz")).json()
    assert health["status"] == "degraded"
    assert any(p.startswith("webhook crm: failing since") for p in health["problems"])
    # And after max_age_h (72 h) the event is given up: reported, not dropped
    worker.clock.advance(hours=80)
    async with asyncio.timeout(15):
        while not (await worker.client.get("/healthz")).json().get("problems", []) or \
                "given up" not in " ".join((await worker.client.get("/healthz")).json()
                                           .get("problems", [])):
            await asyncio.sleep(0.3)
    code, out = await asyncio.to_thread(command, cmd.list_, worker, json=True)
    (row,) = json.loads(out)["endpoints"]
    assert row["failed"] == 1 and row["pending"] == 0 and row["last_error"]
    receiver.up()
    code, out = await asyncio.to_thread(command, cmd.replay, worker, name="crm", since=None,
                                        failed=True)
    assert "1 failed event(s)" in out
    (back,) = await arrived(receiver, "lead.created")
    assert back.verified
