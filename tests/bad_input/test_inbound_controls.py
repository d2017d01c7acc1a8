"""Control characters in inbound mail never reach what is printed (issue 12, low item 6).

An ESC sequence in an inbound subject was stored and printed raw by ``lead show``. Parsing
now removes C0/C1 controls from every header value (subject, names) and from the body text
the excerpt is cut from; ``printable`` is the helper for anything else printed.
"""

from __future__ import annotations

import base64
import re

from hypothesis import given
from hypothesis import strategies as st

from tests.bad_input._support import examples
from worker.domain.inbound_parse import parse_message, printable

_ANY_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
ESC = "\x1b[2J\x1b]0;pwned\x07\x9b31m"


def _raw(subject: str, name: str, body: str) -> bytes:
    b64 = base64.b64encode(body.encode()).decode()
    return (f"From: {name} <lead@example.com>\r\nTo: dana@acme.example\r\nSubject: {subject}\r\n"
            "Message-ID: <c1@example.com>\r\nMIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{b64}\r\n").encode()


def test_escape_sequences_are_removed_from_subject_name_and_text() -> None:
    encoded = "=?utf-8?b?" + base64.b64encode(f"Re: hi{ESC} there".encode()).decode() + "?="
    for subject in (f"Re: hi{ESC} there", encoded):
        msg = parse_message(_raw(subject, f"Lee{ESC}", f"Thanks!{ESC}\nCall me.\tBye"))
        assert not _ANY_CONTROL.search(msg.subject), repr(msg.subject)
        assert msg.subject.startswith("Re: hi") and msg.subject.endswith("there")
        assert not _ANY_CONTROL.search(msg.from_name or "")
        assert not _BODY_CONTROL.search(msg.text) and not _BODY_CONTROL.search(msg.new_text)
        assert "Call me.\tBye" in msg.new_text


def test_printable_helper() -> None:
    assert printable(f"a{ESC}b\nc\td") == "a[2J]0;pwned31mb\nc\td"
    assert printable("a\nb\tc\x00", keep_lines=False) == "a b c"


@examples(60)
@given(st.text(max_size=80), st.text(max_size=200))
def test_no_control_character_survives_parsing(subject: str, body: str) -> None:
    encoded = "=?utf-8?b?" + base64.b64encode(subject.encode("utf-8", "surrogatepass")).decode() + "?="
    msg = parse_message(_raw(encoded, "Lee", body))
    assert not _ANY_CONTROL.search(msg.subject)
    assert not _BODY_CONTROL.search(msg.text) and not _BODY_CONTROL.search(msg.new_text)
