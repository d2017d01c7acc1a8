"""XOAUTH2 and OAUTHBEARER client responses (pure), checked against what servers parse."""

from __future__ import annotations

import base64

import pytest

from worker.domain import sasl


def test_xoauth2_is_the_documented_format() -> None:
    assert sasl.xoauth2("rep@example.com", "ya29.tok") == (
        "user=rep@example.com\x01auth=Bearer ya29.tok\x01\x01")


def test_oauthbearer_has_gs2_header_and_escapes_the_authzid() -> None:
    response = sasl.oauthbearer("a,b=c@example.com", "tok", host="imap.example.com", port=993)
    assert response == ("n,a=a=2Cb=3Dc@example.com,\x01host=imap.example.com\x01port=993"
                        "\x01auth=Bearer tok\x01\x01")


def test_encode_round_trips() -> None:
    text = sasl.xoauth2("rep@example.com", "tok")
    assert base64.b64decode(sasl.encode(text)).decode() == text


@pytest.mark.parametrize(("user", "token"), [("rep@example.com", "SEKRIT\x01user=admin"),
                                             ("rep\x01x", "SEKRIT"), ("", "SEKRIT"),
                                             ("rep@example.com", "")])
def test_control_characters_and_empty_values_are_refused_without_echoing_them(
        user: str, token: str) -> None:
    with pytest.raises(ValueError) as refused:
        sasl.xoauth2(user, token)
    assert "SEKRIT" not in str(refused.value)
    with pytest.raises(ValueError):
        sasl.oauthbearer(user, token)


def test_server_error_decodes_the_json_challenge() -> None:
    challenge = base64.b64encode(b'{"status":"401"}').decode()
    assert sasl.server_error(challenge) == '{"status":"401"}'
    assert sasl.server_error("not base64!") == ""
