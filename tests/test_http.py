"""The HTTP door against a running worker: real requests (httpx) to `nurture run`'s own
server, real mail to an aiosmtpd server on loopback, SQLite in a temp folder."""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import email
import email.policy
import io
import json
import logging
import os
import re
import signal
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, func, select

from tests.servers._util import free_port
from tests.servers.smtp import ReceivedMessage, ScriptedSmtpServer
from tests.workspace import API_TOKEN, SECRET, FakeClock, email_template, make_app, write_campaign
from worker.adapters.db import models as m
from worker.app import App
from worker.domain.tokens import make_unsubscribe_token
from worker.runner import Runner

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
    runner = Runner(app)
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


# --- intake and speed to lead ------------------------------------------------------------------

async def test_lead_posted_over_http_gets_its_first_mail_at_once(worker: Worker) -> None:
    # Given a running worker with a campaign whose first step has wait = "0"
    # When a lead is posted with a bearer token
    r = await worker.client.post("/api/leads", headers=AUTH, json={
        "email": "Ada@Example.test", "first_name": "Ada", "campaign": "hello",
        "fields": {"plan": "pro"}})
    # Then it is created and enrolled
    assert r.status_code == 201
    body = r.json()
    assert body["email"] == "ada@example.test" and body["enrolled"] == ["hello"]
    assert isinstance(body["id"], int)
    # And its first mail is handed to SMTP without waiting for a poll
    (mail,) = await worker.mails(1)
    assert mail.rcpt_tos == ("ada@example.test",)
    headers = headers_of(mail)
    assert len(await worker.db(worker.app.db.enrollments_of, body["id"])) == 1
    with worker.app.db.session() as s:
        sent_id = s.scalar(select(m.Touch.message_id).where(m.Touch.lead_id == body["id"]))
    assert headers["Message-ID"] == f"<{sent_id}>" == f"<{mail.message_id.strip('<>')}>"
    assert unsubscribe_url(mail).startswith(f"{worker.base_url}/u/")
    assert "mailto:" in str(headers["List-Unsubscribe"])
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "Ada" in str(headers["Subject"])


async def test_form_encoded_intake(worker: Worker) -> None:
    # Given a server-side form handler posting application/x-www-form-urlencoded
    form = [("email", "grace@example.test"), ("first_name", "Grace"), ("tags", "Hello, vip"),
            ("tags", "webinar"), ("fields[plan]", "team"), ("fields[seats]", "12"),
            ("utm_source", "newsletter"), ("company", "")]
    # When it posts the lead
    r = await worker.client.post("/api/leads", headers={**AUTH, **FORM},
                                 content=urlencode(form).encode())
    # Then comma-separated and repeated tags are merged, fields[x] and other keys are fields,
    # and a tag of a campaign enrols the lead there
    assert r.status_code == 201, r.text
    assert r.json()["enrolled"] == ["hello"]
    lead = await worker.db(worker.app.db.lead_by_email, "grace@example.test")
    assert lead.first_name == "Grace" and lead.company is None
    assert sorted(lead.tags) == ["hello", "vip", "webinar"]
    assert lead.fields == {"plan": "team", "seats": 12, "utm_source": "newsletter"}
    (mail,) = await worker.mails(1)
    assert mail.rcpt_tos == ("grace@example.test",)


async def test_field_errors_name_the_field(worker: Worker) -> None:
    # Given a running worker
    # When a lead names an unknown campaign, has a bad address, or a CR in a field
    cases = [({"email": "x@example.test", "campaign": "nope"}, "campaign"),
             ({"email": "not an address"}, "email"),
             ({"first_name": "Ada"}, "email"),
             ({"email": "x@example.test", "last_name": "A\r\nBcc: y@example.test"}, "last_name"),
             ({"email": "x@example.test", "campaign": ["hello"]}, "campaign")]
    for payload, field in cases:
        r = await worker.client.post("/api/leads", headers=AUTH, json=payload)
        # Then each answers 400 with that field's reason, and nothing is stored
        assert r.status_code == 400, payload
        assert field in r.json()["errors"], r.json()
    assert await worker.db(count, worker.app, m.Lead) == 0


async def test_suppressed_address_is_refused(worker: Worker) -> None:
    # Given an address on the suppression list
    await worker.db(worker.app.db.add_suppression, "gone@example.test", "unsubscribed", "test")
    # When it is posted again
    r = await worker.client.post("/api/leads", headers=AUTH,
                                 json={"email": "gone@example.test", "campaign": "hello"})
    # Then the answer is a field error on email that says why
    assert r.status_code == 400
    assert "suppressed" in r.json()["errors"]["email"]
    assert await worker.db(count, worker.app, m.Enrollment) == 0


async def test_api_needs_the_token(worker: Worker) -> None:
    # Given a worker with NURTURE_API_TOKEN set
    lead = {"email": "eve@example.test", "campaign": "hello"}
    # When a request comes without a token, with a wrong one, or with another scheme
    for headers in ({}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {API_TOKEN}x"},
                    {"Authorization": f"Basic {API_TOKEN}"}):
        for path in ("/api/leads", "/api/events"):
            r = await worker.client.post(path, headers=headers,
                                         json={**lead, "type": "webinar"})
            # Then it is refused with 401 and a Bearer challenge, and the token is not echoed
            assert r.status_code == 401
            assert r.headers["WWW-Authenticate"].startswith("Bearer")
            assert API_TOKEN not in r.text
    assert await worker.db(count, worker.app, m.Lead) == 0


async def test_api_without_a_configured_token_is_disabled(tmp_path: Path) -> None:
    # Given a worker started without NURTURE_API_TOKEN
    running = await start_worker(tmp_path, None, API_TOKEN="")
    try:
        # When anyone posts a lead, even with a token
        r = await running.client.post("/api/leads", headers=AUTH,
                                      json={"email": "a@example.test"})
        # Then the answer is 401 and says the API is disabled
        assert r.status_code == 401
        assert "disabled" in r.json()["error"]
    finally:
        assert await running.stop() == 0


async def test_idempotency_key_replays_the_first_answer(worker: Worker) -> None:
    # Given a lead posted with an Idempotency-Key
    headers = {**AUTH, "Idempotency-Key": "form-7f3a"}
    lead = {"email": "ida@example.test", "campaign": "hello"}
    first = await worker.client.post("/api/leads", headers=headers, json=lead)
    assert first.status_code == 201
    # When the same request is retried with the same key
    again = await worker.client.post("/api/leads", headers=headers, json=lead)
    # Then it gets the same status and body, and nothing is done twice
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert await worker.db(count, worker.app, m.Lead) == 1
    assert await worker.db(count, worker.app, m.Enrollment) == 1
    # And a different request under the same key is refused
    other = await worker.client.post("/api/leads", headers=headers,
                                     json={**lead, "first_name": "Ida"})
    assert other.status_code == 422
    # And events (not idempotent by nature) are recorded once per key
    event_headers = {**AUTH, "Idempotency-Key": "evt-1"}
    for _ in range(3):
        r = await worker.client.post("/api/events", headers=event_headers,
                                     json={"email": "ida@example.test", "type": "webinar"})
        assert r.status_code == 201
    assert await worker.db(count, worker.app, m.Event) == 1
    (mail,) = await worker.mails(1)
    assert mail.rcpt_tos == ("ida@example.test",)


# --- bad requests ------------------------------------------------------------------------------

async def test_oversized_malformed_and_mistyped_bodies(worker: Worker) -> None:
    limit = worker.app.settings.http.max_body_bytes
    big = b'{"email": "big@example.test", "x": "' + b"a" * limit + b'"}'

    async def chunks() -> AsyncIterator[bytes]:
        for start in range(0, len(big), 4096):
            yield big[start:start + 4096]

    # Given a running worker
    # When a body is larger than http.max_body_bytes, declared or not (chunked)
    declared = await worker.client.post("/api/leads", headers={**AUTH, "Content-Type":
                                                               "application/json"}, content=big)
    chunked = await worker.client.post("/api/leads", headers={**AUTH, "Content-Type":
                                                              "application/json"},
                                       content=chunks())
    # Then both answer 413
    assert declared.status_code == 413 and chunked.status_code == 413
    assert "bytes" in chunked.json()["error"]
    # When the JSON is malformed, not an object, or uses NaN
    for raw in (b'{"email": ', b'["a@example.test"]', b'{"email": "n@example.test", "x": NaN}',
                b"", b"\xff\xfe"):
        r = await worker.client.post("/api/leads", headers={**AUTH, "Content-Type":
                                                            "application/json"}, content=raw)
        # Then the answer is 400 with a message
        assert r.status_code == 400, raw
        assert r.json()["error"]
    # When the content type is neither JSON nor a form
    r = await worker.client.post("/api/leads", headers={**AUTH, "Content-Type": "text/plain"},
                                 content=b"email=a@example.test")
    # Then the answer is 415
    assert r.status_code == 415
    # And no answer leaks a traceback; nothing was stored
    assert await worker.db(count, worker.app, m.Lead) == 0


async def test_unknown_paths_and_methods_answer_json(worker: Worker) -> None:
    # Given a running worker
    # When an unknown path or a wrong method is requested
    missing = await worker.client.get("/wp-login.php")
    wrong = await worker.client.get("/api/leads")
    # Then the answers are JSON 404 and 405
    assert missing.status_code == 404 and missing.json() == {"error": "not found"}
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


async def test_an_unexpected_error_is_a_bare_500(worker: Worker,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    # Given a bug deep inside the intake
    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"password={API_TOKEN} at /srv/nurture/worker/service.py")

    monkeypatch.setattr(worker.app.service, "intake", boom)
    # When a lead is posted
    r = await worker.client.post("/api/leads", headers=AUTH, json={"email": "b@example.test"})
    # Then the answer is a generic JSON 500: no traceback, no path, no secret
    assert r.status_code == 500
    assert r.json() == {"error": "internal error; the worker's log has the details"}
    # And the error went to the log instead
    assert any(rec.name == "worker.adapters.http_io" and rec.exc_info for rec in caplog.records)
    # And the server goes on answering
    assert (await worker.client.get("/healthz")).status_code == 200


async def test_a_database_outage_is_a_503_and_the_retry_works(
        worker: Worker, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a database that stops answering during an intake
    from worker.errors import StoreError

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StoreError("database error: connection refused")

    headers = {**AUTH, "Idempotency-Key": "retry-me"}
    lead = {"email": "later@example.test", "campaign": "hello"}
    with monkeypatch.context() as patch:
        patch.setattr(worker.app.service, "intake", down)
        # When a lead is posted
        r = await worker.client.post("/api/leads", headers=headers, json=lead)
    # Then the answer is 503 (retry later), not a 500, and names no internals
    assert r.status_code == 503 and "connection refused" not in r.text
    # And once the database is back, the retry with the same key does the work
    again = await worker.client.post("/api/leads", headers=headers, json=lead)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers


async def test_a_slow_body_times_out(tmp_path: Path) -> None:
    # Given a worker with a short request timeout
    running = await start_worker(tmp_path, None, HTTP__TIMEOUT_S="0.5")
    port = int(running.base_url.rsplit(":", 1)[1])
    try:
        # When a client announces a body and then stalls (raw socket: httpx would not read
        # an answer before it finished sending)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /api/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                     b"\r\nAuthorization: Bearer " + API_TOKEN.encode() +
                     b"\r\nContent-Length: 40\r\n\r\n{\"email\": ")
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
            rest = await reader.read()
        writer.close()
        # Then the request is answered 408 and the connection closed, nothing stored
        assert status_line.startswith(b"HTTP/1.1 408"), status_line
        assert b"did not arrive" in rest
        assert await running.db(count, running.app, m.Lead) == 0
    finally:
        assert await running.stop() == 0


# --- events ------------------------------------------------------------------------------------

async def test_events_enrol_by_enroll_when(worker: Worker) -> None:
    # Given a campaign with enroll_when = "interactions >= 2 or 'contact_request' in events"
    post = worker.client.post
    # When a lead has one interaction
    first = await post("/api/events", headers=AUTH, json={
        "email": "ev@example.test", "type": "webinar", "fields": {"satisfaction": 9}})
    # Then it is recorded, with its fields on the lead, and nothing is enrolled yet
    assert first.status_code == 201 and first.json()["enrolled"] == []
    lead = await worker.db(worker.app.db.lead_by_email, "ev@example.test")
    assert first.json()["lead_id"] == lead.id and lead.fields["satisfaction"] == 9
    # When it has a second one (form-encoded this time)
    second = await post("/api/events", headers={**AUTH, **FORM},
                        content=b"email=ev%40example.test&type=download&fields%5Bpaper%5D=roi")
    # Then the campaign enrols it and its first mail goes out
    assert second.status_code == 201 and second.json()["enrolled"] == ["webinar"]
    lead = await worker.db(worker.app.db.lead_by_email, "ev@example.test")
    assert lead.fields["paper"] == "roi"
    # When another lead asks to be contacted
    contact = await post("/api/events", headers=AUTH,
                         json={"email": "hot@example.test", "type": "contact_request"})
    # Then it is enrolled at once as well
    assert contact.status_code == 201 and contact.json()["enrolled"] == ["webinar"]
    mails = await worker.mails(2)
    assert sorted(x.rcpt_tos[0] for x in mails) == ["ev@example.test", "hot@example.test"]
    # And a bad type or unknown key is a field error
    bad = await post("/api/events", headers=AUTH, json={"email": "ev@example.test",
                                                         "type": "Web Inar!"})
    assert bad.status_code == 400 and "type" in bad.json()["errors"]
    extra = await post("/api/events", headers=AUTH, json={"email": "ev@example.test",
                                                           "type": "x", "plan": "pro"})
    assert extra.status_code == 400 and "plan" in extra.json()["errors"]


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
    engine = worker.app.db.engine
    worker.app.db.engine = create_engine(f"sqlite:///{worker.app.settings.campaigns_dir}/x/y.db")
    try:
        down = await worker.client.get("/healthz")
    finally:
        worker.app.db.engine = engine
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
    caplog.set_level(logging.INFO, logger="worker.runner")
    port = free_port()
    app = await asyncio.to_thread(make_app, tmp_path, None, HTTP__ENABLED="false",
                                  HTTP__PORT=str(port))
    runner = Runner(app)
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
            await asyncio.wait_for(Runner(app).run(), 20)
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
