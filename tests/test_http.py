"""The HTTP door against a running worker: intake, speed to lead, bad requests, events.
Real requests (httpx) to `nurture run`'s own server, real mail to an aiosmtpd server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from tests.httpkit import (  # the `worker` fixture comes from tests/conftest.py
    AUTH,
    FORM,
    Worker,
    count,
    headers_of,
    start_worker,
    unsubscribe_url,
)
from tests.workspace import API_TOKEN
from worker.adapters.db import models as m

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
    assert any(rec.name == "worker.adapters.http.io" and rec.exc_info for rec in caplog.records)
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
