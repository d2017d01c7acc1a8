"""Helpers for the webhook tests: a settable clock, a migrated outbox on SQLite or PostgreSQL."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from worker.adapters.db.engine import make_engine, migrate

SECRET = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class SetClock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime = START) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


def migrated_engine(url: str) -> Engine:
    """An engine on ``url`` with the schema at head."""
    engine = make_engine(url)
    migrate(engine)
    return engine
