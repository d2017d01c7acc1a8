"""Any bytes as an inbound message, through the whole ``Inbound.handle`` on SQLite:
parsing, classification, matching to a lead (by In-Reply-To, References, a delivery report,
an unsubscribe token or the sender), the actions (stop, postpone, suppress, forward) and the
record.

``tests/test_classify.py`` shows that ``classify_bytes`` never raises on any bytes. This goes
through the service and the database, with messages shaped to reach every branch: replies to
mails the worker really sent, delivery reports naming them, out-of-office and unsubscribe
replies, broken MIME, bad charsets and transfer encodings, and byte-level damage to all of
these. Each message is handled without an exception and recorded exactly once, however
often it is handed over.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from tests.bad_input._support import Workspace, examples, nasty_text, workspace
from tests.workspace import TWO_STEPS, email_template, outbox, run_once, write_campaign
from worker.adapters.db import models as m
from worker.domain.model import InboundClass
from worker.ports import RawMessage
from worker.usecases.inbound import fingerprint

LEADS = 6
CAMPAIGN = TWO_STEPS.replace("    [[step]]", '    on_reply = "pause-company"\n    [[step]]', 1)
TEMPLATE = email_template("Your report", "Hello {{ lead.first_name | default('there') }}, "
                          "[unsubscribe]({{ unsubscribe_url }})")


@dataclass
class Inbox:
    ws: Workspace
    emails: list[str]
    message_ids: list[str]
    unsubscribe_tokens: list[str]


@pytest.fixture(scope="module")
def inbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Inbox]:
    tmp = tmp_path_factory.mktemp("inbound")
    with workspace(tmp, NOTIFY__DEFAULT_OWNER="owner@acme.example",
                   INBOUND__SOFT_BOUNCE_LIMIT="2") as ws:
        write_campaign(tmp / "campaigns", "hello", CAMPAIGN, {"one.md": TEMPLATE})
        emails = [f"lead{i}@{'acme.test' if i % 2 else 'gmail.com'}" for i in range(LEADS)]
        for address in emails:
            ws.app.service.intake({"email": address, "first_name": "Lee"}, campaign="hello")
        # The first step goes out, so replies and reports can name real Message-IDs
        assert run_once(ws.app) == 0
        with ws.app.db.session() as s:
            message_ids = list(s.scalars(select(m.Touch.message_id)
                                         .where(m.Touch.message_id.is_not(None))))
        tokens = []
        for mail in outbox(tmp):
            head = mail.split(b"\r\n\r\n", 1)[0].decode()
            tokens.append(head.split("/u/", 1)[1].split(">", 1)[0])
        assert len(message_ids) == len(tokens) == LEADS
        yield Inbox(ws, emails, message_ids, tokens)


# --- messages --------------------------------------------------------------------------------

def header_value(inbox: Inbox) -> st.SearchStrategy[str]:
    return st.one_of(nasty_text(max_pieces=4), st.sampled_from(inbox.emails),
                     st.sampled_from(inbox.message_ids).map(lambda i: f"<{i}>"),
                     st.sampled_from(["", " ", "<>", "<<>>", "=?utf-8?b?////?=", "=?x?q?=ZZ?=",
                                      "=?utf-8?q?" + "a" * 2000 + "?=", "\"unclosed", "(((",
                                      "Mon, 32 Foo 99999 25:61:61 +9999", "a" * 5000]))


@st.composite
def parts(draw: st.DrawFn, inbox: Inbox, depth: int = 0) -> bytes:
    ctype = draw(st.sampled_from([
        "text/plain", "text/plain; charset=utf-8", "text/plain; charset=x-unknown-42",
        "text/plain; charset=\"", "text/html; charset=iso-8859-1", "message/delivery-status",
        "message/rfc822", "text/rfc822-headers", "message/feedback-report",
        "multipart/mixed", "multipart/report; report-type=delivery-status",
        "multipart/alternative; boundary=", "application/octet-stream", "garbage/"]))
    cte = draw(st.sampled_from(["", "7bit", "8bit", "base64", "quoted-printable", "x-uue",
                                "binary", "base64 ; junk"]))
    if ctype.startswith("multipart") and depth < 2:
        boundary = draw(st.sampled_from(["b1", "=_x", "", "a" * 100, "\"q\""]))
        children = draw(st.lists(parts(inbox, depth + 1), max_size=3))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + c + b"\r\n" for c in children)
        if draw(st.booleans()):
            body += b"--" + boundary.encode() + b"--\r\n"
        head = f"Content-Type: {ctype}; boundary=\"{boundary}\"\r\n"
    else:
        if ctype == "message/delivery-status":
            recipient = draw(st.sampled_from(inbox.emails) | nasty_text(max_pieces=2))
            status = draw(st.sampled_from(["5.1.1", "4.2.2", "5.7.1", "2.0.0", "9.9.9", "x"]))
            text = (f"Reporting-MTA: dns; mx.test\r\n\r\nFinal-Recipient: rfc822; {recipient}"
                    f"\r\nAction: {draw(st.sampled_from(['failed', 'delayed', 'delivered']))}"
                    f"\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 {status} nope\r\n")
        elif ctype in ("message/rfc822", "text/rfc822-headers"):
            text = (f"Message-ID: {draw(header_value(inbox))}\r\nTo: "
                    f"{draw(header_value(inbox))}\r\nSubject: x\r\n\r\nbody\r\n")
        else:
            text = draw(st.sampled_from([
                "Hi, thanks!\r\n", "Please unsubscribe me.\r\n", "STOP\r\n",
                "I am out of the office until 2026-03-20.\r\n", "Je suis absent.\r\n",
                "Delivery has failed: 550 5.1.1 user unknown\r\n"]) | nasty_text())
        data = text.encode("utf-8", "surrogatepass")
        if cte.startswith("base64") and draw(st.booleans()):
            data = base64.encodebytes(data)
        data += draw(st.binary(max_size=40))
        head = f"Content-Type: {ctype}\r\n"
        body = data
    if cte:
        head += f"Content-Transfer-Encoding: {cte}\r\n"
    return head.encode("utf-8", "surrogatepass") + b"\r\n" + body


@st.composite
def messages(draw: st.DrawFn, inbox: Inbox) -> bytes:
    names = ["From", "To", "Subject", "In-Reply-To", "References", "Message-ID", "Date",
             "Auto-Submitted", "X-Autoreply", "Precedence", "Return-Path", "Reply-To",
             "List-Id", "X-Failed-Recipients", "Sender", "Resent-From"]
    headers: list[tuple[str, str]] = []
    for name in draw(st.lists(st.sampled_from(names), max_size=10)):
        value = draw(header_value(inbox))
        if name == "Subject":
            value = draw(st.sampled_from(["", "Re: ", "RE: AW: ", "Out of Office: ",
                                          "Automatic reply: ", "Undelivered Mail Returned to "
                                          "Sender", "unsubscribe", "Delivery Status "
                                          "Notification (Failure)", "unsubscribe "
                                          f"{draw(st.sampled_from(inbox.unsubscribe_tokens))}"])
                          ) + value
        headers.append((name, value))
    head = "".join(f"{n}: {v}\r\n" for n, v in headers).encode("utf-8", "surrogatepass")
    if draw(st.booleans()):
        head += b"MIME-Version: 1.0\r\n"
    data = head + draw(parts(inbox))
    for _ in range(draw(st.integers(0, 3))):  # damage: flip, cut, insert, swap line ends
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        move = draw(st.sampled_from(["flip", "cut", "insert", "crlf"]))
        if move == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif move == "cut":
            data = data[:at]
        elif move == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        else:
            data = data.replace(b"\r\n", draw(st.sampled_from([b"\n", b"\r", b"\n\r"])))
    return data


# --- the property ------------------------------------------------------------------------------

def handle_twice(inbox: Inbox, data: bytes, uid: str) -> None:
    db = inbox.ws.app.db
    fp = fingerprint(data)
    seen_before = db.inbound_seen("default", fp)
    message = RawMessage("default", "INBOX", uid, 0, data, len(data))
    # When the message is handed over, twice (a fence and the watcher, or a restart)
    first = inbox.ws.app.inbox.handle(message)
    second = inbox.ws.app.inbox.handle(message)
    # Then it is recorded once, with one of the five classes, and nothing raised
    assert first is (not seen_before) and second is False
    with db.session() as s:
        rows = s.execute(select(m.Inbound.cls, m.Inbound.action).where(
            m.Inbound.fingerprint == fp)).all()
    assert len(rows) == 1
    assert rows[0].cls in {c.value for c in InboundClass}
    assert rows[0].action


_uids = iter(range(10**9))


@examples(150)
@given(st.data())
def test_shaped_and_damaged_messages_are_handled_and_recorded_once(inbox: Inbox,
                                                                  data: st.DataObject) -> None:
    raw = data.draw(messages(inbox), label="message")
    handle_twice(inbox, raw, str(next(_uids)))


@examples(100)
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_are_handled_and_recorded_once(inbox: Inbox, raw: bytes) -> None:
    handle_twice(inbox, raw, str(next(_uids)))


def test_the_inbox_still_works_after_the_noise(inbox: Inbox) -> None:
    # Given all the messages above (some of which stopped, postponed or suppressed leads)
    # When a plain reply from a fresh lead arrives
    app = inbox.ws.app
    app.service.intake({"email": "fresh@acme.test"}, campaign="hello")
    lead = app.db.lead_by_email("fresh@acme.test")
    assert lead is not None
    reply = (b"From: Fresh <fresh@acme.test>\r\nTo: dana@acme.example\r\nSubject: Re: hi\r\n"
             b"Message-ID: <fresh-reply@acme.test>\r\n\r\nYes, call me.\r\n")
    handle_twice(inbox, reply, "fresh")
    # Then it is a human reply that stopped the sequence
    assert [e.status for e in app.db.enrollments_of(lead.id)] == ["replied"]
    with app.db.session() as s:
        total = s.scalar(select(func.count()).select_from(m.Inbound))
    assert total and total > 1
