"""Huge and malformed headers cannot freeze the classifier (issue 12, severe item 3).

A ``From`` of 100,000 characters with no ``@`` took 17 s (the address pattern rescanned the
run from each of its positions: 10k 0.27 s, 20k 0.8 s, 40k 2.6 s), a 200 KB ``To`` 60 s and
a 1 MB subject 1.6 s. Classification now reads at most ``MAX_HEADER_CHARS`` of each header
and finds addresses in one pass. The checks compare growth (ten times the input must not
cost anywhere near a hundred times the time) and keep a generous absolute bound.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._support import examples
from worker.domain import dsn
from worker.domain.classify import classify_bytes
from worker.domain.inbound_parse import MAX_FINAL_RECIPIENTS, parse_message

#: The issue's bound is 1 s per message on this machine; asserted with room for a busy CI.
BOUND_S = 3.0


def _message(name: str, value: str) -> bytes:
    head = {"From": "Lee <lead@example.com>", "To": "dana@acme.example", "Subject": "Re: hi",
            "Message-ID": "<r1@example.com>"}
    head[name] = value
    lines = "".join(f"{k}: {v}\r\n" for k, v in head.items())
    return (lines + "\r\nThanks, sounds good.\r\n").encode("utf-8", "surrogateescape")


def _seconds(raw: bytes) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        classify_bytes(raw)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(("header", "unit"), [
    ("From", "a"),                # the 17 s case: one long run of local-part characters
    ("From", "a."),
    ("To", "x"),                  # the 60 s case at 200 KB
    ("To", "a@b, "),              # many real addresses
    ("Cc", "\"q\" <"),
    ("Subject", "=?utf-8?q?a?= "),  # encoded words to decode
    ("Subject", "w "),            # the 1 MB subject
    ("References", "<a@b> "),
])
def test_header_cost_grows_linearly_at_most(header: str, unit: str) -> None:
    # Given the same header at 10,000 and at 100,000 characters
    small = _message(header, (unit * 10_000)[:10_000])
    large = _message(header, (unit * 100_000)[:100_000])
    # When each is classified
    t_small, t_large = _seconds(small), _seconds(large)
    # Then ten times the input costs far less than a hundred times the time (quadratic),
    # and the large one stays well under the bound
    assert t_large <= 20 * max(t_small, 0.005), (t_small, t_large)
    assert t_large < BOUND_S


def test_a_one_megabyte_subject_and_a_200k_to_are_fast() -> None:
    for raw in (_message("Subject", "s" * 1_000_000), _message("To", "y" * 200_000),
                _message("From", "z" * 100_000)):
        start = time.perf_counter()
        msg, verdict = classify_bytes(raw)
        assert time.perf_counter() - start < BOUND_S
        assert verdict.cls is not None and len(msg.subject) <= 8192


def test_a_delivery_report_with_20000_recipients_names_at_most_the_cap() -> None:
    # Given a delivery report listing 20,000 failed recipients
    blocks = "".join(f"Final-Recipient: rfc822; user{i}@example.com\nAction: failed\n"
                     f"Status: 5.1.1\n\n" for i in range(20_000))
    raw = ("From: MAILER-DAEMON@mx.example\nTo: dana@acme.example\nSubject: Undelivered\n"
           "Message-ID: <b1@mx.example>\nMIME-Version: 1.0\n"
           "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n\n"
           "--B\nContent-Type: text/plain\n\nDelivery failed.\n\n"
           "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.example\n\n"
           f"{blocks}--B--\n").encode()
    # When it is parsed
    start = time.perf_counter()
    msg = parse_message(raw)
    # Then at most the cap is handed on (each costs the inbox a lookup), quickly
    assert time.perf_counter() - start < BOUND_S
    assert len(msg.final_recipients) == MAX_FINAL_RECIPIENTS
    assert len(dsn.final_recipients(msg.reports, 3)) == 3


_PIECES = st.sampled_from(["a", ".", "@", "<", ">", "\"", ",", " ", "=?", "?=", "(", ")",
                           "\\", ":", ";", "-", "é", "\x00", "\x1b", "\udc80", "x@y.z"])


@st.composite
def huge_headers(draw: st.DrawFn) -> bytes:
    name = draw(st.sampled_from(["From", "To", "Cc", "Subject", "Reply-To", "Message-ID",
                                 "In-Reply-To", "References", "Date", "Content-Type",
                                 "Return-Path", "Auto-Submitted", "List-Id", "X-Mailer"]))
    unit = "".join(draw(st.lists(_PIECES, min_size=1, max_size=6)))
    size = draw(st.integers(min_value=1_000, max_value=120_000))
    return _message(name, (unit * (size // len(unit) + 1))[:size])


@examples(25)
@given(huge_headers())
def test_huge_malformed_headers_classify_quickly(raw: bytes) -> None:
    # Any header shape and size up to 120 KB classifies without an error and in bounded time
    start = time.perf_counter()
    _msg, verdict = classify_bytes(raw)
    assert time.perf_counter() - start < BOUND_S
    assert verdict.reason
