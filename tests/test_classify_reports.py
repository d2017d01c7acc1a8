"""Unit tests for delivery reports, other automatic mail, odd input and `nurture inbox classify`."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.classifykit import QUOTE_WITH_FOOTER, STEP_ID, mail, run
from worker.commands.inbox import run_classify
from worker.domain.classify import Classification, classify, classify_bytes, parse_message
from worker.domain.model import InboundClass

# --- delivery reports -----------------------------------------------------------------------


def dsn(status: str, action: str, diagnostic: str, *, extra_headers: str = "",
        notice: str = "This is the mail system at host mx.acme.example.") -> bytes:
    """A multipart/report delivery status notification returning our step."""
    return (
        "From: MAILER-DAEMON@mx.acme.example (Mail Delivery System)\r\n"
        "To: dana@acme.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 02 Mar 2026 10:05:00 +0000\r\nMessage-ID: <dsn-1@mx.acme.example>\r\n"
        + extra_headers +
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\n" + notice + "\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.acme.example\r\n\r\n"
        "Final-Recipient: rfc822; lead@example.com\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic}\r\n\r\n"
        "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: dana@acme.example\r\nTo: lead@example.com\r\nMessage-ID: <{STEP_ID}>\r\n"
        "Subject: Your free report\r\n\r\nHere it is.\r\n--b1--\r\n"
    ).encode()


@pytest.mark.parametrize(("status", "action", "diagnostic", "subclass"), [
    ("5.1.1", "failed", ("smtp; 550 5.1.1 <lead@example.com>: Recipient address rejected: "
                         "User unknown in virtual mailbox table"), "hard"),
    ("5.1.2", "failed", "X-Postfix; Host or domain name not found", "hard"),
    ("5.2.2", "failed", "smtp; 552 5.2.2 Mailbox full", "soft"),
    ("4.2.2", "failed", "smtp; 452 4.2.2 Over quota", "soft"),
    ("5.3.4", "failed", "smtp; 552 5.3.4 Message size exceeds fixed limit", "soft"),
    ("5.7.1", "failed", ("smtp; 554 5.7.1 Service unavailable; Client host [192.0.2.1] blocked "
                         "using zen.spamhaus.org"), "policy"),
    ("5.7.26", "failed", "smtp; 550 5.7.26 Unauthenticated mail is not accepted (DMARC)", "policy"),
    ("4.4.7", "delayed", "smtp; 451 4.4.7 Delivery time expired", "soft"),
    ("5.0.0", "failed", "smtp; 550 No such user here", "hard"),
])
def test_delivery_status_notifications(status: str, action: str, diagnostic: str,
                                       subclass: str) -> None:
    # Given an RFC 3464 report for our step
    msg, result = classify_bytes(dsn(status, action, diagnostic))
    # Then it is a bounce of the expected kind, tied to our original message
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, subclass)
    assert msg.final_recipients == ("lead@example.com",)
    assert msg.original_message_id == STEP_ID
    assert msg.status is not None


def test_bounce_with_auto_submitted_is_still_a_bounce() -> None:
    raw = dsn("5.1.1", "failed", "smtp; 550 5.1.1 <lead@example.com>: User unknown",
              extra_headers="Auto-Submitted: auto-replied\r\n")
    assert run(raw).cls == InboundClass.BOUNCE


def test_delay_warning_is_soft_and_says_delayed() -> None:
    raw = dsn("4.4.1", "delayed", "smtp; 421 4.4.1 Connection timed out",
              notice="Delivery to the following recipient has been delayed. "
                     "This is a warning message only; you do not need to resend.")
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "soft")
    assert "delayed" in result.reason


def test_success_report_is_other() -> None:
    result = run(dsn("2.0.0", "delivered", "smtp; 250 2.0.0 OK"))
    assert (result.cls, result.subclass) == (InboundClass.OTHER, None)
    assert "delivered" in result.reason


def test_plain_text_qmail_bounce() -> None:
    raw = (b"From: MAILER-DAEMON@mail.example.net\r\nTo: dana@acme.example\r\n"
           b"Subject: failure notice\r\nDate: Mon, 02 Mar 2026 10:05:00 +0000\r\n\r\n"
           b"Hi. This is the qmail-send program at mail.example.net.\r\n"
           b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
           b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
           b"<lead@example.com>:\r\nSorry, no mailbox here by that name. (#5.1.1)\r\n\r\n"
           b"--- Below this line is a copy of the message.\r\n\r\n"
           b"Message-ID: <" + STEP_ID.encode() + b">\r\nSubject: Your free report\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "hard")
    assert msg.final_recipients == ("lead@example.com",)
    assert msg.original_message_id == STEP_ID


def test_exim_bounce_with_failed_recipients_header() -> None:
    raw = (b"From: Mail Delivery System <Mailer-Daemon@exim.example.org>\r\n"
           b"To: dana@acme.example\r\n"
           b"Subject: Mail delivery failed: returning message to sender\r\n"
           b"X-Failed-Recipients: lead@example.com\r\nAuto-Submitted: auto-replied\r\n\r\n"
           b"This message was created automatically by mail delivery software.\r\n\r\n"
           b"A message that you sent could not be delivered to one or more of its\r\n"
           b"recipients. This is a permanent error. The following address(es) failed:\r\n\r\n"
           b"  lead@example.com\r\n    mailbox is full: retry timeout exceeded\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.BOUNCE, "soft")
    assert msg.final_recipients == ("lead@example.com",)


def test_arf_complaint() -> None:
    raw = (b"From: feedback@arf.mailbox.example\r\nTo: abuse@acme.example\r\n"
           b"Subject: FW: Your free report\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\r\n\r\n'
           b"--f\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
           b"--f\r\nContent-Type: message/feedback-report\r\n\r\n"
           b"Feedback-Type: abuse\r\nUser-Agent: SomeGenerator/1.0\r\nVersion: 1\r\n\r\n"
           b"--f\r\nContent-Type: message/rfc822\r\n\r\n"
           b"Message-ID: <" + STEP_ID.encode() + b">\r\nSubject: Your free report\r\n\r\n"
           b"Hi\r\n--f--\r\n")
    msg, result = classify_bytes(raw)
    assert (result.cls, result.subclass) == (InboundClass.OTHER, "complaint")
    assert "Feedback-Type: abuse" in result.reason
    assert msg.original_message_id == STEP_ID


def test_read_receipt_is_other() -> None:
    raw = (b"From: lead@example.com\r\nTo: dana@acme.example\r\nSubject: Read: Your free report\r\n"
           b"MIME-Version: 1.0\r\n"
           b"Content-Type: multipart/report; report-type=disposition-notification;"
           b' boundary="r"\r\n\r\n'
           b"--r\r\nContent-Type: text/plain\r\n\r\nYour message was displayed.\r\n"
           b"--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
           b"Final-Recipient: rfc822; lead@example.com\r\n"
           b"Disposition: manual-action/MDN-sent-manually; displayed\r\n--r--\r\n")
    result = run(raw)
    assert (result.cls, result.subclass) == (InboundClass.OTHER, None)
    assert "read receipt" in result.reason


def test_challenge_response_is_other() -> None:
    raw = mail("Hello, I received your message. Please add yourself to my guest list so "
               "your messages go to my inbox: https://cr.example/verify?t=1",
               subject="Re: Your free report", sender="noreply@cr.example")
    assert run(raw).cls == InboundClass.OTHER


def test_newsletter_is_other() -> None:
    raw = mail("Big spring sale! 20% off everything. Click here to buy now.",
               subject="Our spring newsletter", reply=False,
               headers={"List-Unsubscribe": "<https://news.example/u/1>", "Precedence": "bulk"})
    assert run(raw).cls == InboundClass.OTHER


# --- robustness -------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    b"",
    b"\x00\xff\xfe garbage \x80\x81",
    b"\r\n\r\n",
    b"Subject: no body",
    b"From: a@b.c\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\nContent-Type: text/pl",
    (b"From: a@b.c\r\nSubject: Re: hi\r\nContent-Type: text/plain; charset=x-unknown\r\n\r\n"
     b"hall\xf6 \xe9"),
    b"Content-Type: text/plain; charset=utf-7\r\n\r\n+ZeVnLIqe-+AGAA-",
    b"Content-Type: multipart/report; report-type=delivery-status\r\n\r\nStatus: 5.1.1\r\n",
    b"Date: Mon, 99 Foo 20x\r\nFrom: =?bogus?q?x?= <>\r\n\r\nhi",
])
def test_odd_input_never_raises(raw: bytes) -> None:
    msg, result = classify_bytes(raw)
    assert result.cls in InboundClass
    assert isinstance(msg.text, str) and isinstance(result.reason, str) and result.reason


def test_twenty_megabyte_attachment_is_not_decoded() -> None:
    # Given a reply carrying a 20 MB attachment
    blob = base64.encodebytes(bytes(15_000_000))
    head = (b"From: lead@example.com\r\nTo: dana@acme.example\r\nSubject: Re: Your free report\r\n"
            b"In-Reply-To: <" + STEP_ID.encode() + b">\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="z"\r\n\r\n'
            b"--z\r\nContent-Type: text/plain\r\n\r\nSee the attached plans.\r\n"
            b"--z\r\nContent-Type: application/octet-stream; name=plans.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n")
    raw = head + blob + b"\r\n--z--\r\n"
    assert len(raw) > 20_000_000
    # When it is classified
    msg, result = classify_bytes(raw)
    # Then it is read as the reply it is, from the first couple of megabytes only
    assert result.cls == InboundClass.HUMAN
    assert msg.new_text == "See the attached plans."


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=3000))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    _msg, result = classify_bytes(raw)
    assert result.cls in InboundClass
    assert result.subclass is None or isinstance(result.subclass, str)


_HEADER_NAMES = st.sampled_from(["From", "To", "Subject", "Content-Type", "Auto-Submitted",
                                 "Content-Transfer-Encoding", "Date", "Return-Path", "X-Autoreply"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(_HEADER_NAMES, st.text(max_size=80)), max_size=8), st.text(max_size=2000))
def test_arbitrary_messages_never_raise(headers: list[tuple[str, str]], body: str) -> None:
    raw = "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n" + body
    _msg, result = classify_bytes(raw.encode("utf-8", "surrogatepass"))
    assert isinstance(result, Classification)
    assert result.cls in InboundClass


def test_classify_never_raises_on_a_broken_parsed_message() -> None:
    msg = parse_message(b"Subject: x\r\n\r\ny")
    broken = type(msg)(**{**msg.__dict__, "headers": None})
    assert classify(broken).cls == InboundClass.OTHER


# --- the command ------------------------------------------------------------------------------


def test_inbox_classify_command(tmp_path: Path) -> None:
    # Given two saved messages and one missing file
    ooo = tmp_path / "ooo.eml"
    ooo.write_bytes(mail("I am out of the office until 9 March.", subject="Out of office"))
    dsn_file = tmp_path / "bounce.eml"
    dsn_file.write_bytes(dsn("5.1.1", "failed", "smtp; 550 5.1.1 User unknown"))
    missing = tmp_path / "missing.eml"
    out, err = io.StringIO(), io.StringIO()
    # When they are classified as JSON
    code = run_classify([str(ooo), str(missing), str(dsn_file)], True, out, err)
    # Then the readable files are reported, the missing one is named, and the exit code is 1
    assert code == 1
    assert str(missing) in err.getvalue() and "Traceback" not in err.getvalue()
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [set(r) for r in rows] == [{"file", "class", "subclass", "reason", "return_date",
                                       "referrals"}] * 2
    assert rows[0]["class"] == "auto_reply" and rows[0]["return_date"] == "2026-03-09"
    assert (rows[1]["class"], rows[1]["subclass"]) == ("bounce", "hard")
    assert rows[1]["return_date"] is None


def test_inbox_classify_text_output(tmp_path: Path) -> None:
    path = tmp_path / "reply.eml"
    path.write_bytes(mail("Call me tomorrow." + QUOTE_WITH_FOOTER))
    out, err = io.StringIO(), io.StringIO()
    assert run_classify([str(path)], False, out, err) == 0
    # (a human reply carries its intent as the subclass, the phrase that decided in the reason)
    assert out.getvalue().startswith(f"{path}: human/interested (")
    assert "'Call me'" in out.getvalue()
    assert err.getvalue() == ""


def test_inbox_classify_json_gives_intent_date_and_referrals(tmp_path: Path) -> None:
    # Given a reply that defers to a named date, and one that refers us to a colleague
    later = tmp_path / "later.eml"
    later.write_bytes(mail("Not right now - please come back to me after 14 March."
                           + QUOTE_WITH_FOOTER))
    ref = tmp_path / "ref.eml"
    ref.write_bytes(mail("I'm not the right person, please talk to Jan (jan@corp.example)."
                         + QUOTE_WITH_FOOTER))
    out, err = io.StringIO(), io.StringIO()
    # When both are classified as JSON
    assert run_classify([str(later), str(ref)], True, out, err) == 0
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    # Then the not_now carries its date and the referral its addresses (a list)
    assert (rows[0]["class"], rows[0]["subclass"]) == ("human", "not_now")
    assert rows[0]["return_date"] is not None and rows[0]["return_date"][5:] == "03-15"  # the day after
    assert rows[0]["referrals"] == []
    assert (rows[1]["subclass"], rows[1]["referrals"]) == ("referral", ["jan@corp.example"])
