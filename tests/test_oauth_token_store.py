"""Refresh tokens at rest: sealed in the database (not readable in the SQLite file), rotated
tokens replace the old ones, a refusal is recorded once, pauses come and go; migration 0004
matches the models and downgrades."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import inspect

from tests.migrationkit import downgrade, schema_diff
from tests.webhookkit import migrated_engine
from worker.adapters.db import Database
from worker.adapters.db.oauth_tokens import OAuthTokens
from worker.adapters.secret_box import SecretBox
from worker.errors import SecretKeyError
from worker.ports import SystemClock

TOKEN = "M.R3_BAY.refresh-token-that-must-never-be-on-disk-" + "x" * 40
KEY = "a-long-enough-secret-key-for-tests"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    migrated_engine(f"sqlite:///{tmp_path}/w.db").dispose()
    from worker.adapters.db.engine import make_engine
    database = Database(make_engine(f"sqlite:///{tmp_path}/w.db", 1), SystemClock())
    yield database
    database.engine.dispose()


def _tokens(db: Database, key: str = KEY) -> OAuthTokens:
    return OAuthTokens(db.session, lambda: SecretBox(key), lambda: datetime.now(UTC))


def test_the_refresh_token_is_not_readable_in_the_sqlite_file(db: Database,
                                                               tmp_path: Path) -> None:
    tokens = _tokens(db)
    tokens.store("sales", "rep@example.test", TOKEN)
    db.checkpoint()
    db.engine.dispose()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("w.db*"))
    assert b"rep@example.test" in raw  # the row is there...
    assert TOKEN.encode() not in raw and b"refresh-token-that-must" not in raw  # ...sealed
    assert _tokens(db).refresh_token("sales") == TOKEN


def test_a_rotated_token_replaces_the_old_and_a_refusal_is_recorded_once(db: Database) -> None:
    tokens = _tokens(db)
    tokens.store("sales", "rep@example.test", TOKEN)
    tokens.store("sales", "", "rotated-" + TOKEN)
    assert tokens.refresh_token("sales") == "rotated-" + TOKEN
    assert tokens.mark_revoked("sales", "invalid_grant") is True
    assert tokens.mark_revoked("sales", "invalid_grant") is False
    assert tokens.refresh_token("sales") is None  # refused: wait for a new sign-in
    shown = tokens.sign_ins()["sales"]
    assert shown.account == "rep@example.test" and shown.revoked_error == "invalid_grant"
    assert TOKEN not in repr(shown)
    tokens.store("sales", "rep@example.test", "new-" + TOKEN)  # `mailbox login` again
    assert tokens.refresh_token("sales") == "new-" + TOKEN


def test_another_secret_key_cannot_open_it(db: Database) -> None:
    _tokens(db).store("sales", "rep@example.test", TOKEN)
    with pytest.raises(SecretKeyError, match="NURTURE_SECRET_KEY differs"):
        _tokens(db, "another-long-enough-secret-key").refresh_token("sales")


def test_pauses_come_and_go(db: Database) -> None:
    tokens = _tokens(db)
    assert tokens.pause("sales", "bounce rate 7.5% over 200 sends") is True
    assert tokens.pause("sales", "again") is False
    assert tokens.pauses() == {"sales": "bounce rate 7.5% over 200 sends"}
    assert tokens.resume("sales") is True and tokens.resume("sales") is False
    assert tokens.pauses() == {}


def test_the_migration_matches_the_models_and_downgrades(db: Database) -> None:
    from worker.adapters.db.models import Base

    engine = db.engine
    assert schema_diff(engine, Base.metadata, "oauth", "pause") == []
    downgrade(engine, "0003")
    assert "oauth_tokens" not in inspect(engine).get_table_names()
    migrated_engine(str(engine.url)).dispose()
    assert {"oauth_tokens", "mailbox_pauses"} <= set(inspect(engine).get_table_names())
