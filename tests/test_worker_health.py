"""`/healthz` of a running worker (its runner in this process, a fake clock): still 200, but
"degraded" with the reason once SMTP has refused every send, or a watched mailbox has gone
unread, for more than a minute; a paused mailbox is shown."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.httpkit import AUTH, start_worker
from tests.servers._util import free_port
from tests.servers.smtp import ScriptedSmtpServer


async def test_healthz_is_degraded_while_every_send_has_failed_for_a_minute(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker whose SMTP server refuses every mail
    smtp_server.fail_next(1000, "554 5.7.1 Relay access denied")
    worker = await start_worker(tmp_path, smtp_server, SMTP__RETRIES="1")
    try:
        # When a lead's first mail is refused
        r = await worker.client.post("/api/leads", headers=AUTH, json={
            "email": "ada@example.test", "campaign": "hello"})
        assert r.status_code == 201
        async with asyncio.timeout(15):
            while worker.runner.stats["failed"] < 1:
                await asyncio.sleep(0.05)
        # Then /healthz still says ok within the first minute
        early = await worker.client.get("/healthz")
        assert early.status_code == 200 and early.json()["status"] == "ok", early.json()
        # And degraded, with the reason, once the failing lasted more than a minute
        worker.clock.advance(seconds=61)
        await asyncio.sleep(1.5)  # a pass of the loop reads the mailbox at the new time
        late = await worker.client.get("/healthz")
        body = late.json()
        assert late.status_code == 200 and body["status"] == "degraded", body
        assert len(body["problems"]) == 1 and body["problems"][0].startswith("smtp: ")
        assert "Relay access denied" in body["problems"][0]
    finally:
        assert await worker.stop() == 0


async def test_healthz_shows_a_paused_mailbox_and_its_mail_waits(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker whose mailbox the bounce guard has paused
    worker = await start_worker(tmp_path, smtp_server)
    try:
        await worker.db(worker.app.oauth_tokens.pause, "default",
                        "bounce rate 7.5% over 200 sends")
        # When a lead comes in
        r = await worker.client.post("/api/leads", headers=AUTH, json={
            "email": "ada@example.test", "campaign": "hello"})
        assert r.status_code == 201
        async with asyncio.timeout(15):
            while worker.runner.stats["deferred"] < 1:
                await asyncio.sleep(0.05)
        # Then its mail waits and /healthz says why
        body = (await worker.client.get("/healthz")).json()
        assert body["mailboxes_stopped"] == {"default": "paused: bounce rate 7.5% over 200 sends"}
        assert body["status"] == "degraded"
        assert "mailbox default paused: bounce rate 7.5% over 200 sends" in body["problems"]
        assert smtp_server.messages == []
    finally:
        assert await worker.stop() == 0


async def test_healthz_is_degraded_while_a_watched_mailbox_cannot_be_read(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker whose IMAP server is not there (nothing listens on its port)
    worker = await start_worker(tmp_path, smtp_server, INBOUND__TRANSPORT="imap",
                                IMAP__HOST="127.0.0.1", IMAP__PORT=str(free_port()),
                                IMAP__USERNAME="replies", IMAP__POLL_INTERVAL_S="0.2")
    try:
        # Then /healthz says ok within the first minute
        early = (await worker.client.get("/healthz")).json()
        assert early["status"] == "ok", early
        # And degraded, naming the mailbox, once it went unread for more than a minute
        worker.clock.advance(seconds=61)
        late = await worker.client.get("/healthz")
        body = late.json()
        assert late.status_code == 200 and body["status"] == "degraded", body
        assert [p for p in body["problems"] if p.startswith("mailbox default: not read since")]
        assert not [p for p in body["problems"] if p.startswith("smtp: ")]
    finally:
        assert await worker.stop() == 0
