"""A thin raw-DBAPI path for the per-mail ledger, the hottest statements in the worker.

SQLAlchemy's per-execute work (compilation cache lookups, bind processing) costs more than
SQLite's own work for these small statements. Here the SQL is written once with ``:name``
parameters, translated to the driver's style, and times are bound exactly as the ORM stores
them (naive UTC text on SQLite, aware timestamps on PostgreSQL).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

_PARAM_RE = re.compile(r"(?<!:):([a-z_][a-z0-9_]*)")


class RawSQL:
    """Dialect-specific SQL fragments for the hot path."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def sql(self, statement: str) -> str:
        """``:name`` parameters in the driver's style (sqlite3: as is; psycopg: %(name)s)."""
        return statement if self.sqlite else _PARAM_RE.sub(r"%(\1)s", statement)

    def ts(self, value: datetime | None) -> Any:
        """A timestamp as this dialect's bound value."""
        if value is None or not self.sqlite:
            return value
        # As the ORM stores it ("%Y-%m-%d %H:%M:%S.%f"); isoformat is several times cheaper.
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")

    def execute_fresh(self, cur: Any, statement: str, params: dict[str, Any]) -> None:
        """Run ``statement`` planned for the table as it is now. psycopg prepares a statement
        run five times, and PostgreSQL may keep the plan it made then: a hand-over prepared
        while ``touches`` was nearly empty kept scanning the whole table (2 ms a commit at
        10,000 rows, growing with the table) instead of using its Message-ID index."""
        if self.sqlite:
            cur.execute(statement, params)
        else:
            cur.execute(statement, params, prepare=False)

    def in_list(self, name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """An expanded ``IN (...)`` list and its parameters."""
        names = [f"{name}{i}" for i in range(len(values))]
        marks = ", ".join(f":{n}" for n in names)
        return f"({marks})", dict(zip(names, values, strict=True))
