"""The HTTP door against a running worker: one-click unsubscribe, health, metrics, the
server's lifecycle. Real requests (httpx), real mail to an aiosmtpd server."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import signal
import threading
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine

from tests.httpkit import (  # the `worker` fixture comes from tests/conftest.py
    AUTH,
    GMAIL_ONE_CLICK,
    Worker,
    count,
    lead_show,
    start_worker,
    statuses,
    unsubscribe_url,
)
from tests.servers._util import free_port
from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import SECRET, make_app
from worker.adapters.db import models as m
from worker.domain.tokens import make_unsubscribe_token

# --- unsubscribe -------------------------------------------------------------------------------

async def test_one_click_unsubscribe_as_gmail_sends_it(worker: Worker) -> None:
    # Given two leads who got the first mail of a two-step campaign
    for addr in ("stop@example.test", "stay@example.test"):
        r = await worker.client.post("/api/leads", headers=AUTH,
                                     json={"email": addr, "campaign": "hello"})
        assert r.status_code == 201
    mails = await worker.mails(2)
    (to_stop,) = [x for x in mails if x.rcpt_tos == ("stop@example.test",)]
    url = unsubscribe_url(to_stop)
    # When the mailbox provider posts the one-click unsubscribe exactly as Gmail does
    r = await worker.client.post(url, headers=GMAIL_ONE_CLICK,
                                 content=b"List-Unsubscribe=One-Click")
    # Then it answers 200 with a short page, no redirect
    assert r.status_code == 200 and "location" not in r.headers
    assert r.headers["content-type"].startswith("text/html")
    assert "unsubscribed" in r.text
    # And `nurture lead show` has the lead suppressed and its enrolment closed
    shown = await worker.db(lead_show, worker.app, "stop@example.test")
    assert shown["suppressed"] == "unsubscribed"
    assert [e["status"] for e in shown["enrollments"]] == ["unsubscribed"]
    changes = await worker.db(count, worker.app, m.StatusChange)
    # When the same link is used again
    again = await worker.client.post(url, headers=GMAIL_ONE_CLICK,
                                     content=b"List-Unsubscribe=One-Click")
    # Then it answers 200 and changes nothing more
    assert again.status_code == 200 and "already" in again.text
    assert await worker.db(count, worker.app, m.StatusChange) == changes
    # When the second step falls due for both
    worker.clock.advance(days=2)
    worker.runner.wake()
    # Then only the lead who stayed gets it
    mails = await worker.mails(3)
    assert [x.rcpt_tos[0] for x in mails].count("stop@example.test") == 1
    assert mails[2].rcpt_tos == ("stay@example.test",)
    shown = await worker.db(lead_show, worker.app, "stop@example.test")
    assert [t["step"] for t in shown["enrollments"][0]["touches"]] == ["first"]


async def test_unsubscribe_page_get_changes_nothing(worker: Worker) -> None:
    # Given a lead who got a mail
    r = await worker.client.post("/api/leads", headers=AUTH,
                                 json={"email": "look@example.test", "campaign": "hello"})
    (mail,) = await worker.mails(1)
    url = unsubscribe_url(mail)
    # When the link is fetched (a mail scanner, or the lead opening it)
    for _ in range(3):
        page = await worker.client.get(url)
        # Then a self-contained page with a confirm button is shown
        assert page.status_code == 200
        assert '<form method="post">' in page.text
        assert 'name="List-Unsubscribe" value="One-Click"' in page.text
        assert "http" not in page.text.split("<body>")[1]  # no external asset or link
        assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["Referrer-Policy"] == "no-referrer"
    # And nothing changed
    assert await worker.db(worker.app.db.suppression_for, "look@example.test") is None
    assert await worker.db(statuses, worker.app, "look@example.test") == ["active"]
    # When the lead presses the button (multipart, as some browsers' forms may send)
    done = await worker.client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    # Then the lead is unsubscribed
    assert done.status_code == 200 and r.status_code == 201
    assert await worker.db(statuses, worker.app, "look@example.test") == ["unsubscribed"]
    # And the page now says so on a GET
    assert "already" in (await worker.client.get(url)).text


async def test_bad_tokens_change_nothing(worker: Worker) -> None:
    # Given a lead with a genuine unsubscribe token
    r = await worker.client.post("/api/leads", headers=AUTH,
                                 json={"email": "tok@example.test", "campaign": "hello"})
    lead_id = r.json()["id"]
    token = make_unsubscribe_token(SECRET.encode(), lead_id, "hello")
    body, sig = token.split(".")
    other_payload = base64.urlsafe_b64encode(f"{lead_id + 1}:hello".encode()).rstrip(b"=")
    flipped = sig[:-1] + ("A" if sig[-1] != "A" else "B")
    bad = {
        "truncated": token[:-3],
        "altered signature": f"{body}.{flipped}",
        "altered payload": f"{other_payload.decode()}.{sig}",
        "forged with another key": make_unsubscribe_token(b"not-the-key", lead_id, "hello"),
        "garbage": "not-a-token",
        "empty signature": f"{body}.",
    }
    for name, forged in bad.items():
        # When a forged, altered or truncated token is used (GET or one-click POST)
        got = await worker.client.get(f"/u/{forged}")
        posted = await worker.client.post(f"/u/{forged}", headers=GMAIL_ONE_CLICK,
                                          content=b"List-Unsubscribe=One-Click")
        # Then it answers 4xx
        assert 400 <= got.status_code < 500 and 400 <= posted.status_code < 500, name
    # And nothing changed
    assert await worker.db(worker.app.db.suppression_for, "tok@example.test") is None
    assert await worker.db(statuses, worker.app, "tok@example.test") == ["active"]
    assert await worker.db(count, worker.app, m.Suppression) == 0
    # While the genuine token, posted with an empty body, still works
    ok = await worker.client.post(f"/u/{token}")
    assert ok.status_code == 200
    assert await worker.db(statuses, worker.app, "tok@example.test") == ["unsubscribed"]


# --- health and metrics ------------------------------------------------------------------------

async def test_healthz_follows_the_database(worker: Worker) -> None:
    # Given a running worker that sent a mail
    await worker.client.post("/api/leads", headers=AUTH,
                             json={"email": "h@example.test", "campaign": "hello"})
    await worker.mails(1)
    # When /healthz is asked while the database answers (and the send is recorded)
    async with asyncio.timeout(10):
        while (ok := await worker.client.get("/healthz")).json()["due_backlog"] != 0:
            await asyncio.sleep(0.02)
    # Then it is 200 with the state of each door
    assert ok.status_code == 200
    body = ok.json()
    assert body["database"] == "ok"
    assert body["smtp_last_success_at"] is not None and body["smtp_last_error"] is None
    assert "default" in body["imap_last_success_at"]
    assert body["oldest_due_lag_s"] == 0
    # When the database stops answering
    engine = worker.app.db.conn.engine
    worker.app.db.conn.engine = create_engine(f"sqlite:///{worker.app.settings.campaigns_dir}/x/y.db")
    try:
        down = await worker.client.get("/healthz")
    finally:
        worker.app.db.conn.engine = engine
    # Then it is 503, and says which door is down
    assert down.status_code == 503 and down.json()["database"] == "unreachable"


async def test_metrics_scrape(worker: Worker) -> None:
    # Given a running worker that sent one mail
    await worker.client.post("/api/leads", headers=AUTH,
                             json={"email": "met@example.test", "campaign": "hello"})
    await worker.mails(1)
    # When Prometheus scrapes /metrics (once the worker has heard the server's answer)
    async with asyncio.timeout(10):
        while True:
            r = await worker.client.get("/metrics")
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
            families = {f.name: f for f in text_string_to_metric_families(r.text)}
            sent = [s.value for s in families["nurture_mails_sent"].samples
                    if s.name == "nurture_mails_sent_total"]
            if sent:
                break
            await asyncio.sleep(0.02)
    # Then the text parses, every metric name starts with nurture_, and the mail is counted
    assert all(name.startswith("nurture_") for name in families)
    assert sum(sent) == 1
    assert "nurture_due_backlog" in families


# --- lifecycle ---------------------------------------------------------------------------------

async def test_server_stops_with_the_worker_and_sigterm_stays_the_workers(
        tmp_path: Path) -> None:
    # Given a running worker serving HTTP in the main thread
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach only the main thread")
    before = signal.getsignal(signal.SIGTERM)
    running = await start_worker(tmp_path, None)
    port = int(running.base_url.rsplit(":", 1)[1])
    # When the process gets SIGTERM
    os.kill(os.getpid(), signal.SIGTERM)
    # Then the worker's own handler stops it, cleanly, and the server with it
    assert await asyncio.wait_for(running.task, 20) == 0
    await running.client.aclose()
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
    # And no handler is left behind
    assert signal.getsignal(signal.SIGTERM) == before


async def test_http_can_be_turned_off(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                      ) -> None:
    # Given http.enabled = false
    caplog.set_level(logging.INFO, logger="worker.engine.runner")
    port = free_port()
    app = await asyncio.to_thread(make_app, tmp_path, None, HTTP__ENABLED="false",
                                  HTTP__PORT=str(port))
    runner = app.make_runner()
    task = asyncio.create_task(runner.run())
    try:
        # When the worker has started
        async with asyncio.timeout(10):
            while "action=worker_start" not in caplog.text:
                await asyncio.sleep(0.01)
        # Then nothing listens on the port
        with pytest.raises(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
    finally:
        runner.stop()
        assert await asyncio.wait_for(task, 20) == 0


async def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    # Given a port another process listens on
    blocker = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = blocker.sockets[0].getsockname()[1]
    app = await asyncio.to_thread(make_app, tmp_path, None, HTTP__ENABLED="true",
                                  HTTP__PORT=str(port))
    try:
        # When the worker starts
        from worker.errors import ConfigError
        with pytest.raises(ConfigError, match="http.port"):
            await asyncio.wait_for(app.make_runner().run(), 20)
    finally:
        blocker.close()
        await blocker.wait_closed()
        app.stop_worker()


@pytest.mark.postgres
async def test_the_same_flow_on_postgresql(tmp_path: Path, smtp_server: ScriptedSmtpServer,
                                           pg_url: str) -> None:
    # Given a worker on PostgreSQL (several HTTP threads, row locks, real transactions)
    running = await start_worker(tmp_path, smtp_server, DATABASE__URL=pg_url)
    try:
        # When the same lead is posted twice at once with one Idempotency-Key
        headers = {**AUTH, "Idempotency-Key": "pg-1"}
        lead = {"email": "pg@example.test", "campaign": "hello"}
        first, second = await asyncio.gather(
            running.client.post("/api/leads", headers=headers, json=lead),
            running.client.post("/api/leads", headers=headers, json=lead))
        # Then one does the work and the other replays it or is told to retry
        assert sorted([first.status_code, second.status_code]) in ([201, 201], [201, 409])
        again = await running.client.post("/api/leads", headers=headers, json=lead)
        assert again.status_code == 201 and again.json()["id"] == first.json().get(
            "id", second.json().get("id"))
        assert await running.db(count, running.app, m.Enrollment) == 1
        # And the first mail goes out; its one-click link unsubscribes the lead
        (mail,) = await running.mails(1)
        r = await running.client.post(unsubscribe_url(mail), headers=GMAIL_ONE_CLICK,
                                      content=b"List-Unsubscribe=One-Click")
        assert r.status_code == 200
        assert await running.db(statuses, running.app, "pg@example.test") == ["unsubscribed"]
        assert (await running.client.get("/healthz")).status_code == 200
    finally:
        assert await running.stop() == 0
