"""The HTTP door with hypothesis-built requests, against the worker's own ASGI application
(``worker.adapters.http.server.build_asgi``: the request boundary, the routes, the real ``Intake``
on SQLite), driven in-process by Starlette's TestClient.

* ``POST /api/leads`` and ``POST /api/events`` with any JSON (or not JSON at all), any media
  type, any token: only 201, 400, 401, 413 or 415; never a 500, a stack trace, the API token
  or the signing key in an answer.
* ``POST /u/{token}`` with forged, truncated, altered and spliced versions of a genuine
  unsubscribe token: always 4xx, and nobody is suppressed; the genuine token works, and a
  replay answers 200 and changes nothing more.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

with warnings.catch_warnings():  # "use httpx2": the TestClient works with httpx as it is
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from tests.bad_input._support import (
    CONTROL,
    CONTROLS,
    TERMINAL,
    Workspace,
    examples,
    fresh_domain,
    nasty_text,
    workspace,
)
from tests.httpkit import start_worker
from tests.workspace import API_TOKEN, SECRET, email_template, write_campaign
from worker.adapters.db import models as m
from worker.adapters.http.context import Context
from worker.adapters.http.server import build_asgi
from worker.domain import tokens

ALLOWED = {201, 400, 401, 413, 415}
AUTH = f"Bearer {API_TOKEN}"
VALID_AUTH = {AUTH, f"bearer {API_TOKEN}", f"Bearer {API_TOKEN} "}  # RFC 7235: any case
MAX_BODY = 4096  # http.max_body_bytes for this suite, so 413 is cheap to reach
HELLO = """
    name = "Hello"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    enroll_tags = ["hello"]
    [[step]]
    id = "one"
    wait = "1 d"
    template = "one.md"
"""
WEBINAR = """
    name = "Webinar"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    enroll_when = "interactions >= 2 or 'contact_request' in events"
    [[step]]
    id = "one"
    wait = "1 d"
    template = "one.md"
"""


@dataclass
class Api:
    ws: Workspace
    client: TestClient


@contextlib.contextmanager
def serving(tmp: Path, **env: str) -> Iterator[Api]:
    """The worker's ASGI app on a fresh workspace, with the two campaigns."""
    with workspace(tmp, HTTP__MAX_BODY_BYTES=str(MAX_BODY), **env) as ws:
        for slug, toml in (("hello", HELLO), ("webinar", WEBINAR)):
            write_campaign(tmp / "campaigns", slug, toml, {"one.md": email_template("Hi")})
        ctx = Context(ws.app.http_ports(), ws.app.make_runner(), SECRET.encode(),
                      ThreadPoolExecutor(1))
        with TestClient(build_asgi(ctx), raise_server_exceptions=False) as client:
            yield Api(ws, client)
        ctx.pool.shutdown()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with serving(tmp_path_factory.mktemp("http")) as opened:
        yield opened


def assert_safe(response: Any) -> None:
    """No stack trace, no secret, in any answer."""
    text = response.text
    assert response.status_code in ALLOWED, (response.status_code, text[:500])
    for leak in ("Traceback", 'File "', API_TOKEN, SECRET, "sqlalchemy", "psycopg"):
        assert leak not in text, (leak, text[:500])
    if text:
        assert isinstance(response.json(), dict)


# --- bodies ----------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | nasty_text(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(nasty_text(max_pieces=2), children, max_size=4),
    max_leaves=12)
emails = st.one_of(
    st.builds(lambda n, d: f"Lead{n}@{d}", st.integers(0, 10**6), st.sampled_from(
        ["acme.test", "x.example", "localhost", "ACME.TEST."])),
    st.sampled_from(["", " ", "not-an-address", "a@", "a\r\nBcc: x@evil.test@acme.test",
                     "a\x00@acme.test", "\ufeffa@acme.test", "a" * 300 + "@acme.test"]),
    json_values)
lead_bodies = st.fixed_dictionaries({"email": emails}, optional={
    "first_name": json_values, "last_name": nasty_text(), "company": json_values,
    "timezone": st.sampled_from(["Europe/Paris", "Mars/Olympus", "", "../../etc/passwd"])
    | json_values,
    "country": nasty_text(max_pieces=2), "owner": emails, "phone": nasty_text(),
    "tags": st.lists(nasty_text(max_pieces=2), max_size=3) | json_values,
    "fields": st.dictionaries(nasty_text(max_pieces=2), json_values, max_size=4) | json_values,
    "campaign": st.sampled_from(["hello", "webinar", "nope", "", "../hello"]) | json_values,
    "source": json_values, "consent_at": json_values, "extra": json_values})
event_bodies = st.fixed_dictionaries({"email": emails}, optional={
    "type": st.sampled_from(["webinar", "contact_request", "Webinar", "", "x" * 70, "a b",
                             "visit\n"]) | json_values,
    "fields": st.dictionaries(nasty_text(max_pieces=2), json_values, max_size=4) | json_values,
    "source": json_values, "unknown": json_values})
raw_bodies = st.one_of(
    st.binary(max_size=300),
    st.sampled_from([b"", b"null", b"[]", b'"x"', b"NaN", b'{"email": NaN}', b"{" * 50_000,
                     b'{"email": "a@acme.test", "n": ' + b"1" * 5000 + b"}",
                     b"[" * 100_000 + b"]" * 100_000, b'{"email": "a@acme.test"}' * 2,
                     b"\xef\xbb\xbf{}", b'{"email": "\\ud800@acme.test"}',
                     b'{"email": "a@acme.test", "first_name": "' + b"x" * (MAX_BODY + 10) + b'"}']))
media = st.sampled_from(["application/json", "application/json; charset=utf-8",
                         "application/problem+json", "APPLICATION/JSON", "text/plain", "",
                         "application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
                         "application/json; charset=latin-1"])
auth = st.sampled_from([AUTH, AUTH, AUTH, None, "Bearer", "Bearer wrong", f"Basic {API_TOKEN}",
                        f"bearer {API_TOKEN}", f"Bearer {API_TOKEN} ", f"Bearer {API_TOKEN}x",
                        f"Bearer {API_TOKEN[:-1]}", "Bearer \u00e9t\u00e9"])


def encode(body: Any, content_type: str) -> bytes:
    if isinstance(body, bytes):
        return body
    if "form" in content_type and isinstance(body, dict):
        return urlencode({str(k): json.dumps(v) if not isinstance(v, str) else v
                          for k, v in body.items()}).encode("utf-8", "surrogatepass")
    return json.dumps(body, ensure_ascii=False).encode("utf-8", "surrogatepass")


REQUESTS = examples(150)


@REQUESTS
@given(st.sampled_from(["/api/leads", "/api/events"]), st.data(), media, auth)
def test_any_body_gets_a_client_error_or_201_never_a_500(api: Api, path: str, data: st.DataObject,
                                                         content_type: str,
                                                         token: str | None) -> None:
    # Given any body: a lead or event shape with odd values, any JSON, or any bytes
    shaped = lead_bodies if path == "/api/leads" else event_bodies
    body = data.draw(st.one_of(shaped, shaped, json_values, raw_bodies), label="body")
    headers = {"Content-Type": content_type.encode()} if content_type else {}
    if token is not None:
        headers["Authorization"] = token.encode()  # raw UTF-8 when it is not ASCII
    # When it is posted
    response = api.client.post(path, content=encode(body, content_type), headers=headers)
    # Then the answer is one the API documents, without a trace or a secret
    assert_safe(response)
    if token not in VALID_AUTH:
        assert response.status_code in (401, 413), response.text


@examples(60)
@given(st.integers(0, 10**9), nasty_text(exclude=CONTROLS), nasty_text(exclude=CONTROLS))
def test_a_good_lead_with_odd_names_is_created(api: Api, number: int, first: str,
                                               company: str) -> None:
    # Given a lead whose names hold anything but control characters (TAB aside)
    email = f"good{number}@{fresh_domain()}"
    body = {"email": email, "first_name": first, "company": company, "tags": ["hello"]}
    # When it is posted
    response = api.client.post("/api/leads", json=body, headers={"Authorization": AUTH})
    # Then it is created, stored as sent (stripped), and enrolled by its tag
    assert response.status_code == 201, response.text
    assert response.json()["enrolled"] == ["hello"]
    lead = api.ws.app.db.lead_by_email(email)
    assert lead is not None
    assert (lead.first_name, lead.company) == (first.strip() or None, company.strip() or None)


@examples(40)
@given(st.sampled_from(["first_name", "company", "last_name", "fields"]),
       st.sampled_from(CONTROL + TERMINAL + ["\x85x", "x\x0bx", "\x1cx"]),
       nasty_text(exclude=CONTROLS, max_pieces=2))
def test_control_characters_in_a_lead_are_refused_naming_the_field(
        api: Api, where: str, control: str, around: str) -> None:
    # Given a lead whose name (or a custom field) holds a C0 or C1 control, e.g. ESC [2J
    value = f"a{around}{control}{around}x"
    body: dict[str, Any] = {"email": f"esc@{fresh_domain()}"}
    body.update({"fields": {"note": value}} if where == "fields" else {where: value})
    # When it is posted
    response = api.client.post("/api/leads", json=body, headers={"Authorization": AUTH})
    # Then it is refused with the field named, and nothing is stored
    assert response.status_code == 400, response.text
    field = "fields.note" if where == "fields" else where
    assert response.json()["errors"][field].startswith("contains control characters")
    assert api.ws.app.db.lead_by_email(body["email"]) is None


@pytest.mark.parametrize("number", [b"1e999", b"-1e999", b"1E400", b"-0.1e99999"])
@pytest.mark.parametrize("where", ["score", "fields", "company"])
def test_a_number_too_big_for_a_double_is_a_400_naming_the_field(api: Api, number: bytes,
                                                                 where: str) -> None:
    # Given a JSON body whose number parses to infinity
    email = f"inf@{fresh_domain()}"
    value = b'{"score": ' + number + b"}" if where == "fields" else number
    key = b"fields" if where == "fields" else where.encode()
    raw = b'{"email": "' + email.encode() + b'", "' + key + b'": ' + value + b"}"
    # When it is posted
    response = api.client.post("/api/leads", content=raw, headers={
        "Authorization": AUTH, "Content-Type": "application/json"})
    # Then it is refused naming the field; nothing is stored that export could not write
    assert response.status_code == 400, response.text
    field = "fields.score" if where == "fields" else where
    assert response.json()["errors"] == {field: "must be a finite number"}
    assert api.ws.app.db.lead_by_email(email) is None


SPELLINGS = [["Industry", "industry", "-industry-", "INDUSTRY "],
             ["in dustry", "In-Dustry", "in_dustry", "in.dustry"]]


@examples(30)
@given(st.sampled_from(SPELLINGS).flatmap(
    lambda group: st.lists(st.sampled_from(group), min_size=2, max_size=3, unique=True)),
       st.booleans())
def test_field_names_that_become_one_key_are_refused_not_merged(api: Api, names: list[str],
                                                                nested: bool) -> None:
    # Given two or more spellings of one field name (they normalise to the same key)
    email = f"merge@{fresh_domain()}"
    fields = {n: f"v{i}" for i, n in enumerate(names)}
    body = {"email": email, "fields": fields} if nested else {"email": email, **fields}
    # When posted
    response = api.client.post("/api/leads", json=body, headers={"Authorization": AUTH})
    # Then the request is refused naming the colliding names, and nothing is stored
    assert response.status_code == 400, response.text
    (field, reason), = response.json()["errors"].items()
    stripped = [n.strip() for n in names]
    assert field.strip() in stripped and "names the same field as" in reason
    assert any(n in reason for n in stripped if n != field.strip())
    assert api.ws.app.db.lead_by_email(email) is None


# --- unsubscribe tokens ----------------------------------------------------------------------

URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def same_claim(token: str, genuine: str) -> bool:
    """A spelling of the genuine token (base64's spare bits in the last payload character):
    it names the same lead and campaign. Such tokens are the subject of the xfail below."""
    try:
        body, _, sig = token.partition(".")
        g_body, _, g_sig = genuine.partition(".")
        return sig == g_sig and body != g_body and \
            base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)) == \
            base64.urlsafe_b64decode(g_body + "=" * (-len(g_body) % 4))
    except ValueError:
        return False


@st.composite
def altered(draw: st.DrawFn, genuine: str, lead_id: int, other_id: int) -> str:
    body, _, sig = genuine.partition(".")
    key = SECRET.encode()
    moves = [
        lambda t: t[:draw(st.integers(0, len(t) - 1))],                           # truncated
        lambda t: t + draw(st.text(URLSAFE + ".=/~", min_size=1, max_size=5)),    # extended
        lambda t: (lambda i: t[:i] + draw(st.sampled_from(URLSAFE.replace(t[i], "")))
                   + t[i + 1:])(draw(st.integers(0, len(t) - 1))),                # one char
        lambda t: (lambda i: t[:i] + t[i + 1:])(draw(st.integers(0, len(t) - 1))),  # dropped
        lambda t: t.swapcase(),
        lambda t: t.replace(".", draw(st.sampled_from(["", "..", "-", "=."]))),
        lambda t: tokens.make_unsubscribe_token(b"guessed-key", lead_id, "hello"),  # forged
        lambda t: b64(f"{other_id}:hello".encode()) + "." + sig,                  # spliced
        lambda t: b64(draw(st.sampled_from([f"{lead_id}:hello:", f"0{lead_id}:hello",
                                            f"{lead_id}:webinar", f"{lead_id}:", f":{lead_id}",
                                            f"{lead_id} :hello", f"-{lead_id}:hello"]))
                      .encode()) + "." + sig,
        lambda t: tokens.make_unsubscribe_token(key, other_id, "hello").partition(".")[0]
        + "." + sig,
        lambda t: body + "." + tokens.make_unsubscribe_token(key, other_id, "hello")
        .partition(".")[2],
        lambda t: draw(st.text(URLSAFE + ".", max_size=60)),                      # random
    ]
    token = genuine
    for _ in range(draw(st.integers(1, 3))):
        token = draw(st.sampled_from(moves))(token) if token else \
            draw(st.text(URLSAFE + ".", min_size=1, max_size=30))
    return token


@dataclass
class Leads:
    target: int
    bystander: int
    emails: tuple[str, str]


@pytest.fixture(scope="module")
def two_leads(api: Api) -> Leads:
    domain = fresh_domain()
    service = api.ws.app.service
    a = service.intake({"email": f"target@{domain}"}, campaign="hello").lead_id
    b = service.intake({"email": f"bystander@{domain}"}, campaign="hello").lead_id
    return Leads(a, b, (f"target@{domain}", f"bystander@{domain}"))


def suppressed(api: Api, *emails: str) -> list[str | None]:
    return [api.ws.app.db.suppression_for(e) for e in emails]


@examples(200)
@given(st.data())
def test_forged_altered_and_truncated_tokens_never_unsubscribe(api: Api, two_leads: Leads,
                                                               data: st.DataObject) -> None:
    # Given the genuine token of one lead
    genuine = tokens.make_unsubscribe_token(SECRET.encode(), two_leads.target, "hello")
    token = data.draw(altered(genuine, two_leads.target, two_leads.bystander), label="token")
    if token == genuine or same_claim(token, genuine):
        return
    # When an altered version is posted (one-click) and fetched ('%' stays out of the tokens:
    # Starlette's TestClient unquotes the path twice, uvicorn once)
    posted = api.client.post(f"/u/{quote(token, safe='')}", data={
        "List-Unsubscribe": "One-Click"})
    fetched = api.client.get(f"/u/{quote(token, safe='')}")
    # Then both are refused and nobody is unsubscribed
    assert 400 <= posted.status_code < 500 and 400 <= fetched.status_code < 500, token
    assert suppressed(api, *two_leads.emails) == [None, None], token


def test_the_genuine_token_works_once_and_a_replay_changes_nothing(api: Api) -> None:
    # Given two leads and the genuine token of one
    domain = fresh_domain()
    service, db = api.ws.app.service, api.ws.app.db
    lead = service.intake({"email": f"leaving@{domain}"}, campaign="hello").lead_id
    service.intake({"email": f"staying@{domain}"}, campaign="hello")
    token = tokens.make_unsubscribe_token(SECRET.encode(), lead, "hello")
    # When it is posted, then posted again
    first = api.client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    with db.session() as s:
        changes = s.scalar(select(func.count()).select_from(m.StatusChange))
    again = api.client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
    # Then the first unsubscribes that lead only, and the replay answers 200 and changes nothing
    assert first.status_code == 200 and "You are unsubscribed" in first.text
    assert again.status_code == 200 and "already unsubscribed" in again.text
    assert suppressed(api, f"leaving@{domain}", f"staying@{domain}") == ["unsubscribed", None]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(m.StatusChange)) == changes


def test_an_altered_spelling_of_a_token_is_refused(api: Api, two_leads: Leads) -> None:
    genuine = tokens.make_unsubscribe_token(SECRET.encode(), two_leads.target, "hello")
    body, _, sig = genuine.partition(".")
    spellings = [body[:-1] + c + "." + sig for c in URLSAFE]
    variants = [t for t in spellings if same_claim(t, genuine)]
    assert variants  # the payload's last character carries spare bits
    for token in variants:
        assert api.client.get(f"/u/{token}").status_code == 404, token


@pytest.mark.postgres
def test_a_long_company_on_postgresql_is_a_201_or_a_400(tmp_path: Path, pg_url: str) -> None:
    with serving(tmp_path, DATABASE__URL=pg_url) as pg:
        response = pg.client.post("/api/leads", headers={"Authorization": AUTH}, json={
            "email": "long@pg.test", "company": "c" * 300})
        assert_safe(response)


# --- the server: slow clients and redirects (issue 12, items 7 and 11) -------------------------

HEAD = (b"POST /api/leads HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + API_TOKEN.encode() + b"\r\nContent-Length: 2\r\n\r\n{}")


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> bool:
    """True if the server closes the connection within ``seconds`` (reads to EOF)."""
    try:
        async with asyncio.timeout(seconds):
            while await reader.read(4096):
                pass
        return True
    except TimeoutError:
        return False


async def test_half_sent_request_heads_are_closed_after_the_timeout(tmp_path: Path) -> None:
    # Given a worker with a request time limit of 0.5 s
    running = await start_worker(tmp_path, None, HTTP__TIMEOUT_S="0.5")
    port = int(running.base_url.rsplit(":", 1)[1])
    try:
        # When 50 clients each send half a request head and stop
        opened = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
        for _, writer in opened:
            writer.write(HEAD[:30])
            await writer.drain()
        # Then the server closes every one of them (it kept them open for ever)
        closed = await asyncio.gather(*(_closed_within(r, 10) for r, _ in opened))
        assert all(closed), closed.count(False)
        for _, writer in opened:
            writer.close()
        # And the server still answers
        assert (await running.client.get("/healthz")).status_code == 200
    finally:
        assert await running.stop() == 0


async def test_a_request_head_trickled_byte_by_byte_is_cut_off(tmp_path: Path) -> None:
    running = await start_worker(tmp_path, None, HTTP__TIMEOUT_S="0.5")
    port = int(running.base_url.rsplit(":", 1)[1])
    try:
        # Given a client that sends a request head one byte every 50 ms (about 8 s in all)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        sent = 0
        with contextlib.suppress(ConnectionError):
            for byte in HEAD:
                writer.write(bytes([byte]))
                await writer.drain()
                sent += 1
                await asyncio.sleep(0.05)
                if reader.at_eof() or writer.is_closing():
                    break
        # Then the server closes the connection long before the head is complete
        assert await _closed_within(reader, 10)
        assert sent < len(HEAD) // 2, sent
        writer.close()
    finally:
        assert await running.stop() == 0


async def test_an_idle_keep_alive_connection_then_a_half_head_is_closed(tmp_path: Path) -> None:
    running = await start_worker(tmp_path, None, HTTP__TIMEOUT_S="0.5")
    port = int(running.base_url.rsplit(":", 1)[1])
    try:
        # Given a connection that made one whole request (kept alive)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        assert (await reader.readline()).startswith(b"HTTP/1.1 200")
        # When the next request stops half way through its head
        writer.write(b"GET /hea")
        await writer.drain()
        # Then the connection is closed
        assert await _closed_within(reader, 10)
        writer.close()
    finally:
        assert await running.stop() == 0


async def test_a_token_path_with_a_final_slash_is_404_not_a_redirect_to_the_host_header(
        tmp_path: Path) -> None:
    running = await start_worker(tmp_path, None)
    try:
        token = tokens.make_unsubscribe_token(SECRET.encode(), 1, "hello")
        for method in ("GET", "POST"):
            answer = await running.client.request(method, f"/u/{token}/",
                                                  headers={"Host": "evil.example"})
            assert answer.status_code == 404, answer.headers
            assert "location" not in answer.headers
            assert "evil.example" not in answer.text
    finally:
        assert await running.stop() == 0
