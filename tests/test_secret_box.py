"""Refresh tokens sealed at rest: unreadable without the key, bound to their mailbox."""

from __future__ import annotations

import base64

import pytest

from worker.adapters.secret_box import SecretBox, refresh_token_context
from worker.errors import ConfigError, SecretKeyError

KEY = "correct horse battery staple"
TOKEN = "1//0gRefreshTokenValue-Very_Secret.abc123"


def test_round_trip_and_the_stored_text_does_not_contain_the_token() -> None:
    box = SecretBox(KEY)
    context = refresh_token_context("sales")

    stored = box.seal(TOKEN, context)

    assert box.open(stored, context) == TOKEN
    assert TOKEN not in stored and "Secret" not in stored
    raw = base64.urlsafe_b64decode(stored[3:])
    assert TOKEN.encode() not in raw and base64.b64encode(TOKEN.encode()) not in stored.encode()


def test_each_seal_is_different() -> None:
    box = SecretBox(KEY)
    assert box.seal(TOKEN, "c") != box.seal(TOKEN, "c")


def test_a_wrong_key_fails_clearly_without_the_token() -> None:
    stored = SecretBox(KEY).seal(TOKEN, refresh_token_context("sales"))
    with pytest.raises(SecretKeyError, match="NURTURE_SECRET_KEY differs") as refused:
        SecretBox("another key of enough length").open(stored, refresh_token_context("sales"))
    assert TOKEN not in str(refused.value)


def test_a_token_sealed_for_one_mailbox_does_not_open_as_another() -> None:
    box = SecretBox(KEY)
    stored = box.seal(TOKEN, refresh_token_context("sales"))
    with pytest.raises(SecretKeyError):
        box.open(stored, refresh_token_context("support"))


@pytest.mark.parametrize("damage", [lambda s: s[:-2] + ("AA" if s[-2:] != "AA" else "BA"),
                                    lambda s: "v1.", lambda s: "v1.%%%", lambda s: s[3:]])
def test_changed_or_damaged_data_is_refused(damage: object) -> None:
    box = SecretBox(KEY)
    stored = box.seal(TOKEN, "c")
    with pytest.raises(SecretKeyError):
        box.open(damage(stored), "c")  # type: ignore[operator]


@pytest.mark.parametrize("key", ["", "short"])
def test_a_missing_or_short_secret_key_is_a_config_error(key: str) -> None:
    with pytest.raises(ConfigError, match="NURTURE_SECRET_KEY"):
        SecretBox(key)
