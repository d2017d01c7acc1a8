"""A throwaway PostgreSQL cluster: initdb in a temp dir, trust auth on 127.0.0.1, fsync off."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Self

if TYPE_CHECKING:
    from psycopg.sql import Composed

from tests.servers._util import RunAs, ServerUnavailable, free_port

SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres: PATH, else Debian's newest version."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).parent
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
                        key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


class PostgresCluster:
    """One PostgreSQL server for the whole test session.

    As root, initdb and postgres run as the ``postgres`` system user (else ``nobody``), since
    both refuse to run as root. ``url()`` gives plain ``postgresql://postgres@127.0.0.1:PORT/DB``.
    """

    def __init__(self, port: int | None = None) -> None:
        bindir = find_bindir()
        if bindir is None:
            raise ServerUnavailable("PostgreSQL binaries (initdb, pg_ctl) not found; "
                                    "apt-get install postgresql")
        self.bindir = bindir
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.run_as = RunAs.first_of("postgres", "nobody")
        self.tmp = Path(tempfile.mkdtemp(prefix="nurture-pg-"))
        self.tmp.chmod(0o755)
        self.run_as.chown(self.tmp)
        self.datadir = self.tmp / "data"
        self.logfile = self.tmp / "postgres.log"
        self._running = False

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> Self:
        """initdb (first time only) and start the server; return self."""
        if not (self.datadir / "PG_VERSION").exists():
            self._run("initdb", "-D", str(self.datadir), "--auth=trust", f"--username={SUPERUSER}",
                      "--encoding=UTF8", "--locale=C", "--no-sync")
            conf = self.datadir / "postgresql.conf"
            with conf.open("a", encoding="utf-8") as fh:
                fh.write(
                    "\n# nurture test cluster\n"
                    f"listen_addresses = '{self.host}'\n"
                    f"port = {self.port}\n"
                    f"unix_socket_directories = '{self.tmp}'\n"
                    "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                    "max_connections = 300\nshared_buffers = 64MB\n"
                    "log_min_messages = warning\n"
                )
        self._run("pg_ctl", "-D", str(self.datadir), "-l", str(self.logfile), "-w", "-t", "60",
                  "start")
        self._running = True
        return self

    def stop(self) -> None:
        """Stop the server (immediately: the data is throwaway) and delete the cluster."""
        if self._running:
            self._run("pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop",
                      check=False)
            self._running = False
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- databases ------------------------------------------------------------------------

    def url(self, dbname: str = "postgres") -> str:
        """A plain libpq URL for ``dbname`` (no driver name, no password: trust auth)."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create ``name`` (optionally as a copy of ``template``); return its URL."""
        from psycopg import sql

        stmt = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            stmt = sql.SQL("{} TEMPLATE {}").format(stmt, sql.Identifier(template))
        self._admin(stmt)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop ``name`` even if clients are still connected."""
        from psycopg import sql

        self._admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
            sql.Identifier(name)))

    def _admin(self, stmt: Composed) -> None:
        import psycopg

        with psycopg.connect(self.url("postgres"), autocommit=True, connect_timeout=10) as conn:
            conn.execute(stmt)

    # -- helpers --------------------------------------------------------------------------

    def _run(self, tool: str, *args: str, check: bool = True) -> None:
        cmd = [str(self.bindir / tool), *args]
        kwargs: dict[str, object] = {}
        if os.geteuid() == 0:
            kwargs = {"user": self.run_as.uid, "group": self.run_as.gid, "extra_groups": []}
        proc = subprocess.run(cmd, cwd=self.tmp, capture_output=True, text=True, timeout=120,
                              check=False,
                              env={**os.environ, "LC_ALL": "C"}, **kwargs)  # type: ignore[call-overload]
        if check and proc.returncode != 0:
            log = self.logfile.read_text(errors="replace")[-2000:] if self.logfile.exists() else ""
            raise RuntimeError(f"{tool} failed ({proc.returncode}): {proc.stderr.strip()}\n{log}")

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
