"""Engines and migrations: the URL users write becomes the driver we ship."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from worker.config import redact_url
from worker.errors import ConfigError, StoreError

MIGRATIONS = Path(__file__).resolve().parents[2] / "migrations"
log = logging.getLogger(__name__)


def driver_url(url: str) -> str:
    """``postgresql://`` (or ``postgres://``) -> psycopg 3; SQLite paths as given."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def sqlite_path(url: str) -> Path | None:
    """The SQLite file a URL names, or None for another database."""
    parsed = make_url(driver_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def make_engine(url: str, pool_size: int = 10) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout."""
    try:
        real = driver_url(url)
        path = sqlite_path(url)
        kwargs: dict[str, Any] = {}
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Created 600 here, before SQLite opens it: SQLite gives the -wal and -shm files
            # the database file's mode, and the file holds every lead's data.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        elif real.startswith("postgresql"):
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
        engine = create_engine(real, **kwargs)
    except (SQLAlchemyError, ImportError, ValueError) as exc:
        raise ConfigError("database.url", f"cannot use {redact_url(url)}: {exc}") from None
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            # Checkpoints run in the worker's housekeeping, not inside whichever commit
            # crosses the threshold (a per-mail ledger commit would stall for tens of ms).
            cur.execute("PRAGMA wal_autocheckpoint=20000")
            cur.close()
    return engine


def alembic_config(engine: Engine) -> Config:
    """The Alembic configuration for the shipped migrations on this engine."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def migrate(engine: Engine) -> str:
    """Create or upgrade the schema to the newest revision; returns it."""
    try:
        with engine.begin() as conn:
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")
        return current_revision(engine) or "none"
    except SQLAlchemyError as exc:
        raise StoreError(f"migration failed on {redact_url(str(engine.url))}: {exc}") from exc


def current_revision(engine: Engine) -> str | None:
    """The schema revision the database is at (None before `nurture init`)."""
    from alembic.runtime.migration import MigrationContext
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision(engine: Engine) -> str | None:
    """The newest revision the shipped migrations know."""
    from alembic.script import ScriptDirectory
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
