"""A migration checked against its models, and taken back down: what each migration test
asks of Alembic, in one place."""

from __future__ import annotations

import warnings
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, MetaData

from worker.adapters.db.engine import alembic_config


def schema_diff(engine: Engine, metadata: MetaData, *words: str) -> list[Any]:
    """The differences between the database and ``metadata`` that name one of ``words``
    (SQLite's expression indexes, which Alembic cannot reflect, are left out quietly)."""
    with engine.connect() as conn, warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Skipped unsupported reflection")
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    return [d for d in diff if any(word in str(d) for word in words)]


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to ``revision``."""
    with engine.begin() as conn:
        cfg = alembic_config(engine)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)
