"""The HTTP tests' worker: `nurture run`'s runner in this process, with its own server on a
free loopback port, real mail to an aiosmtpd server, SQLite in a temp folder."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.servers._util import free_port
from tests.servers.smtp import ReceivedMessage, ScriptedSmtpServer
from tests.workspace import API_TOKEN, FakeClock, email_template, make_app, write_campaign
from worker.app import App
from worker.engine.runner import Runner

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HELLO = """
    name = "Hello"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"
    enroll_tags = ["hello"]

    [[step]]
    id = "first"
    wait = "0"
    window = false
    template = "01-first.md"

    [[step]]
    id = "second"
    wait = "1 d"
    template = "02-second.md"
"""
WEBINAR = """
    name = "Webinar follow-up"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"
    enroll_when = "interactions >= 2 or 'contact_request' in events"

    [[step]]
    id = "thanks"
    wait = "0"
    window = false
    template = "01-thanks.md"
"""


@dataclass
class Worker:
    """A running `nurture run` (as a task in the test's loop) and a client for its HTTP."""

    app: App
    runner: Runner
    task: asyncio.Task[int]
    client: httpx.AsyncClient
    smtp: ScriptedSmtpServer | None
    clock: FakeClock
    base_url: str

    async def mails(self, count: int) -> list[ReceivedMessage]:
        """Wait (bounded) until the SMTP server accepted ``count`` mails."""
        assert self.smtp is not None
        return await asyncio.to_thread(self.smtp.wait_for, count, 15.0)

    async def db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.to_thread(fn, *args)

    async def stop(self) -> int:
        self.runner.stop()
        try:
            return await asyncio.wait_for(self.task, 20)
        finally:
            await self.client.aclose()


async def start_worker(tmp: Path, smtp: ScriptedSmtpServer | None, **env: str) -> Worker:
    write_campaign(tmp / "campaigns", "hello", HELLO, {
        "01-first.md": email_template("Your report, {{ lead.first_name | default('friend') }}"),
        "02-second.md": email_template("A day later")})
    write_campaign(tmp / "campaigns", "webinar", WEBINAR, {
        "01-thanks.md": email_template("Thanks for your interest")})
    port = free_port()
    settings = {"HTTP__ENABLED": "true", "HTTP__PORT": str(port), "INBOUND__TRANSPORT": "maildir"}
    if smtp is not None:
        settings.update(OUTBOUND__TRANSPORT="smtp", SMTP__HOST=smtp.host,
                        SMTP__PORT=str(smtp.port), SMTP__CONNECTIONS="2")
    settings.update(env)
    clock = FakeClock()
    app = await asyncio.to_thread(make_app, tmp, clock, **settings)
    runner = app.make_runner()
    task = asyncio.create_task(runner.run())
    base_url = f"http://127.0.0.1:{port}"
    client = httpx.AsyncClient(base_url=base_url, timeout=10.0)
    async with asyncio.timeout(15):
        while True:
            if task.done():
                task.result()
            try:
                await client.get("/healthz")
                break
            except httpx.ConnectError:
                await asyncio.sleep(0.02)
    return Worker(app, runner, task, client, smtp, clock, base_url)


@pytest.fixture
async def worker(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> AsyncIterator[Worker]:
    running = await start_worker(tmp_path, smtp_server)
    try:
        yield running
    finally:
        assert await running.stop() == 0


def headers_of(mail: ReceivedMessage) -> email.message.EmailMessage:
    return email.message_from_bytes(mail.data, policy=email.policy.default)  # type: ignore[return-value]


def unsubscribe_url(mail: ReceivedMessage) -> str:
    found = re.search(r"<(https?://[^>]+/u/[^>]+)>", str(headers_of(mail)["List-Unsubscribe"]))
    assert found, "no https unsubscribe link in List-Unsubscribe"
    return found.group(1)


def count(app: App, table: Any) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def lead_show(app: App, email_addr: str) -> dict[str, Any]:
    """What `nurture lead show EMAIL --json` prints (run beside the worker, as ops would)."""
    from worker.commands.people import lead_show as command
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert command(argparse.Namespace(email=email_addr, json=True),
                       lambda: app.settings) == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def statuses(app: App, email_addr: str) -> list[str]:
    lead = app.db.lead_by_email(email_addr)
    assert lead is not None
    return [e.status for e in app.db.enrollments_of(lead.id)]


FORM = GMAIL_ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}
