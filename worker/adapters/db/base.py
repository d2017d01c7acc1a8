"""The database connector: one engine and session factory, shared by the adapter's rooms.

``Connection`` owns the engine, the session factory, the clock and the installation's hash
key; each room (``LeadRows``, ``SendingRows``, ``InboxRows``, ``HttpRows``, ``Reports``) is a
``Room`` built over the same connection, so they share one pool and one transaction style.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from worker.adapters.db import engine as db_engine
from worker.adapters.db import models as m
from worker.adapters.db import webhook_store
from worker.domain.webhook_retry import EndpointStats
from worker.domain.webhooks import WebhookEvent
from worker.errors import StoreError, UserError
from worker.ports import Clock, SystemClock


class Connection:
    """The engine, its session factory, the clock, the hash key; schema and liveness."""

    def __init__(self, engine: Engine, clock: Clock | None = None,
                 webhooks: Mapping[str, frozenset[str] | None] | None = None) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.sessions = sessionmaker(engine, expire_on_commit=False)
        self._hash_key: bytes | None = None
        # The outbox the rooms write events to; None (no endpoint enabled) costs nothing.
        self.outbox = (webhook_store.WebhookStore(engine, webhooks, self.clock)
                       if webhooks else None)

    @property
    def is_sqlite(self) -> bool:
        """SQLite (one worker) rather than PostgreSQL."""
        return self.engine.dialect.name == "sqlite"

    def now(self) -> datetime:
        """The time the rows are written with (a test's fake clock)."""
        return self.clock.now()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction, committed on success."""
        try:
            with self.sessions.begin() as session:
                yield session
        except OperationalError as exc:
            raise StoreError(f"database error: {exc.orig}") from exc

    def webhook_stats(self) -> dict[str, EndpointStats]:
        """Each enabled endpoint's outbox counts (none without endpoints)."""
        return self.outbox.stats() if self.outbox is not None else {}

    def migrate(self) -> str:
        """Bring the schema to the head revision (`nurture init`); returns it."""
        revision = db_engine.migrate(self.engine)
        self.hash_key()
        return revision

    def check_schema(self) -> None:
        """Refuse to run on a database that `nurture init` has not brought up to date."""
        try:
            current = db_engine.current_revision(self.engine)
        except OperationalError as exc:
            raise StoreError(f"database unreachable: {exc.orig}") from exc
        head = db_engine.head_revision(self.engine)
        if current != head:
            raise UserError(f"the database is at revision {current or 'none'}, the code needs "
                            f"{head}: run `nurture init`")

    def checkpoint(self) -> None:
        """SQLite: move the write-ahead log into the database file (without blocking
        writers); nothing to do on PostgreSQL."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def ping(self) -> bool:
        """Whether the database answers (health)."""
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
            return True
        except Exception:  # noqa: BLE001 - health check: any failure means "not reachable"
            return False

    # --- keyed hashes ---------------------------------------------------------------------

    def hash_key(self) -> bytes:
        """This installation's random key for address hashes (created by `nurture init`)."""
        if self._hash_key is None:
            with self.session() as s:
                row = s.get(m.Meta, "hash_key")
                if row is None:
                    row = m.Meta(key="hash_key", value=secrets.token_hex(32))
                    s.add(row)
                self._hash_key = bytes.fromhex(row.value)
        return self._hash_key

    def email_hash(self, email: str) -> str:
        """The keyed hash of an address (erasure keeps only this)."""
        return hmac.new(self.hash_key(), email.lower().encode(), hashlib.sha256).hexdigest()


class Room:
    """A part of the database adapter over the shared ``Connection``."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    @property
    def engine(self) -> Engine:
        """The shared engine."""
        return self.conn.engine

    @property
    def is_sqlite(self) -> bool:
        """SQLite (one worker) rather than PostgreSQL."""
        return self.conn.is_sqlite

    def now(self) -> datetime:
        """The connection's clock."""
        return self.conn.now()

    def session(self) -> contextlib.AbstractContextManager[Session]:
        """A session in a transaction, committed on success."""
        return self.conn.session()

    def email_hash(self, email: str) -> str:
        """The keyed hash of an address."""
        return self.conn.email_hash(email)

    def emit(self, conn: Any, build: Callable[[], Iterable[WebhookEvent]]) -> int:
        """Write webhook events in ``conn``'s transaction (built only if an endpoint wants
        events at all)."""
        return webhook_store.emit(conn, self.conn.outbox, build)

    @property
    def emitting(self) -> bool:
        """Whether any webhook endpoint is enabled (skip the reads events need otherwise)."""
        return self.conn.outbox is not None
