"""Scale: the cost of one scheduler pass as the list grows, on SQLite and PostgreSQL.

    python bench/scale.py                                   # 10k, 100k, 1M on both databases
    python bench/scale.py --sizes 10000,100000 --db sqlite  # a quicker look
    python bench/scale.py --explain                         # plans of the claim's statements

For each database and size N the script builds a fresh, migrated database and fills it in
bulk (executemany on SQLite, COPY on PostgreSQL, secondary indexes dropped during the load and
rebuilt after, exactly as the migration defined them): N leads, each enrolled once (status
active, next step 1), each with the touch of its first mail. Due times are spread one second
apart in a scattered order (not by id), so "now" decides how many are due.

What is measured: `Database.claim_due(worker, now, limit=<due count>, lease_s=30)`, the query
a scheduler pass uses to find and claim its due work (with the leads and earlier touches it
loads for them), called once in a fresh worker-sized child process after one warm-up call
that finds nothing. Planning and sending are not included. Each point is the median of
``--repeat`` children; claims are released between them. Also shown: the same work claimed as
the runner does, ``worker.batch_size`` (200) at a time until nothing is due; and the idle
pass, when nothing is due (``claim_due(limit=200)`` finding nothing, then ``next_due_at()``),
which a worker repeats about once a second.

Two framings of "cost grows with due work, not with the list":
* 1% due: N/100 due (100 of 10k ... 10,000 of 1M): the due work grows with the list, so the
  1M/10k ratio is ~100 even for a perfect query; compare the cost per due row instead.
* equal due: the same ``--equal-due`` (10,000) due rows at every size (all of 10k, 10% of
  100k, 1% of 1M): the 1M/10k ratio is the cost of the list itself. Target: under 2.

Memory: the peak RSS (VmHWM) of the child, which imports what `nurture run` imports
(the app, the runner, the HTTP door) before it claims. Target: under 200 MB.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import child_env, proc_status_mb, table

T0 = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # the first due time; due times go up 1 s a row
STRIDE = 7919  # a prime: rank = id * STRIDE mod N scatters due rows over the table
CHUNK = 50_000
BATCH = 200  # worker.batch_size default
LEASE_S = 30.0


# --- populating --------------------------------------------------------------------------

def sqlite_time(at: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite (models.UTCDateTime)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def due_at(i: int, n: int) -> datetime:
    return T0 + timedelta(seconds=(i * STRIDE) % n)


def rows(n: int, fmt: Any) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]],
                                              list[tuple[Any, ...]]]]:
    """Chunks of (leads, enrollments, touches) rows; ids from 1; ``fmt`` formats datetimes."""
    then = fmt(T0 - timedelta(days=3))
    for start in range(1, n + 1, CHUNK):
        ids = range(start, min(start + CHUNK, n + 1))
        leads = [(i, f"lead{i}@scale{i % 97}.test", f"Lead{i}", "[]", "{}", "bench", then, then,
                  then) for i in ids]
        enrollments = [(i, i, "bench", "active", 1, fmt(due_at(i - 1, n)), then, then, 0, 0,
                        then) for i in ids]
        touches = [(i, i, i, "bench", "one", 0, "email", "accepted", 1,
                    f"nurture.{i}.one@acme.example", "default", "Hello", then, then, then, 250,
                    "250 OK", then) for i in ids]
        yield leads, enrollments, touches


LEAD_COLS = "id, email, first_name, tags, fields, source, consent_at, created_at, updated_at"
ENROLL_COLS = ("id, lead_id, campaign, status, next_step, next_due_at, enrolled_at, "
               "last_touch_at, priority, attempts, updated_at")
TOUCH_COLS = ("id, enrollment_id, lead_id, campaign, step_id, step_index, kind, state, "
              "touch_number, message_id, mailbox, subject, planned_at, handed_at, accepted_at, "
              "smtp_code, smtp_response, created_at")


def populate_sqlite(path: Path, n: int) -> None:
    con = sqlite3.connect(path, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=OFF")
    indexes = con.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS "
                          "NOT NULL AND tbl_name IN ('enrollments', 'touches')").fetchall()
    for name, _ in indexes:
        con.execute(f"DROP INDEX {name}")
    con.execute("BEGIN")
    for leads, enrollments, touches in rows(n, sqlite_time):
        for table_name, cols, chunk in (("leads", LEAD_COLS, leads),
                                        ("enrollments", ENROLL_COLS, enrollments),
                                        ("touches", TOUCH_COLS, touches)):
            marks = ", ".join("?" * len(chunk[0]))
            con.executemany(f"INSERT INTO {table_name} ({cols}) VALUES ({marks})", chunk)
    con.execute("COMMIT")
    for _, sql in indexes:
        con.execute(sql)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()


def populate_postgres(url: str, n: int) -> None:
    import psycopg

    with psycopg.connect(url) as con:
        indexes = con.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('enrollments', "
            "'touches') AND indexname NOT IN (SELECT conname FROM pg_constraint)").fetchall()
        for name, _ in indexes:
            con.execute(f'DROP INDEX "{name}"')
        with con.cursor() as cur:
            for leads, enrollments, touches in rows(n, lambda at: at.isoformat()):
                for table_name, cols, chunk in (("leads", LEAD_COLS, leads),
                                                ("enrollments", ENROLL_COLS, enrollments),
                                                ("touches", TOUCH_COLS, touches)):
                    text = "".join("\t".join(str(v) for v in row) + "\n" for row in chunk)
                    with cur.copy(f"COPY {table_name} ({cols}) FROM STDIN") as copy:
                        copy.write(text.encode())
        for _, sql in indexes:
            con.execute(sql)
        for table_name in ("leads", "enrollments", "touches"):
            con.execute(f"SELECT setval(pg_get_serial_sequence('{table_name}', 'id'), {n})")
        con.commit()
        con.autocommit = True
        con.execute("VACUUM ANALYZE")  # what autovacuum does shortly after a bulk load


# --- the child: one pass in a worker-sized process -----------------------------------------------

def child(url: str, now_iso: str, limit: int, mode: str, explain: bool) -> None:
    """Print one JSON line: seconds, claimed, rss_before_mb, hwm_mb (and plans)."""
    from sqlalchemy import event

    import worker.adapters.http.server  # noqa: F401 - the footprint of `nurture run`
    import worker.app  # noqa: F401
    import worker.engine.runner  # noqa: F401
    from worker.adapters.db import Database
    from worker.adapters.db.engine import make_engine

    db = Database(make_engine(url))
    now = datetime.fromisoformat(now_iso)
    db.release_all_claims()
    assert db.claim_due("warm-up", T0 - timedelta(seconds=1), 1, LEASE_S) == []
    statements: list[tuple[str, Any]] = []

    def capture(conn: Any, cur: Any, stmt: str, params: Any, ctx: Any, many: bool) -> None:
        statements.append((stmt, params))

    if explain:
        event.listen(db.engine, "before_cursor_execute", capture)
    rss_before = proc_status_mb("VmRSS")
    claimed = 0
    started = time.perf_counter()
    if mode == "one":
        claimed = len(db.claim_due("bench", now, limit, LEASE_S))
    elif mode == "idle":  # a pass that finds nothing, then the look for the next due time
        claimed = len(db.claim_due("bench", now, BATCH, LEASE_S))
        db.next_due_at()
    else:
        while batch := db.claim_due("bench", now, BATCH, LEASE_S):
            claimed += len(batch)
    seconds = time.perf_counter() - started
    out: dict[str, Any] = {"seconds": seconds, "claimed": claimed, "rss_before_mb": rss_before,
                           "hwm_mb": proc_status_mb("VmHWM")}
    if explain:
        event.remove(db.engine, "before_cursor_execute", capture)
        db.release_all_claims()
        out["plans"] = explain_statements(db, statements)
    print(json.dumps(out))


def explain_statements(db: Any, statements: list[tuple[str, Any]]) -> list[str]:
    """EXPLAIN QUERY PLAN (SQLite) or EXPLAIN ANALYZE (PostgreSQL, rolled back) of each."""
    plans = []
    with db.engine.connect() as conn:
        for stmt, params in statements:
            if stmt.lstrip().upper().startswith(("PRAGMA", "BEGIN", "COMMIT")):
                continue
            prefix = "EXPLAIN QUERY PLAN " if db.is_sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
            result = conn.exec_driver_sql(prefix + stmt, params).all()
            lines = [(str(r[-1]) if db.is_sqlite else str(r[0]))[:200] for r in result]
            head = " ".join(stmt.split())[:160]
            plans.append(head + " ...\n    " + "\n    ".join(lines))
            conn.rollback()
    return plans


# --- the parent ----------------------------------------------------------------------------

@dataclass
class Point:
    db: str
    size: int
    framing: str
    due: int
    one_s: float = 0.0
    batches_s: float = 0.0
    idle_s: float = 0.0
    hwm_mb: float = 0.0
    rss_before_mb: float = 0.0
    populate_s: float = 0.0
    plans: list[str] = field(default_factory=list)


def run_child(url: str, now: datetime, limit: int, mode: str, explain: bool = False
              ) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", url, now.isoformat(),
           str(limit), mode] + (["--explain"] if explain else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env=child_env(), timeout=3600,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"child failed:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["claimed"] != (0 if mode == "idle" else limit):
        raise RuntimeError(f"claimed {result['claimed']} of {limit} due")
    return result


@contextlib.contextmanager
def databases(kind: str) -> Iterator[Any]:
    """A function name -> fresh migrated database URL, for SQLite or a throwaway PostgreSQL."""
    from worker.adapters.db import Database
    from worker.adapters.db.engine import make_engine

    tmp = Path(tempfile.mkdtemp(prefix="nurture-scale-"))
    cluster = None
    try:
        if kind == "postgres":
            from tests.servers.postgres import PostgresCluster
            cluster = PostgresCluster().start()

        def fresh(name: str) -> str:
            url = cluster.create_database(name) if cluster else f"sqlite:///{tmp}/{name}.db"
            db = Database(make_engine(url))
            db.migrate()
            db.engine.dispose()
            return url

        yield fresh
    finally:
        if cluster is not None:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def measure(kind: str, sizes: Iterable[int], equal_due: int, repeat: int, explain: bool
            ) -> list[Point]:
    from worker.adapters.db import Database
    from worker.adapters.db.engine import make_engine

    points: list[Point] = []
    with databases(kind) as fresh:
        for n in sizes:
            url = fresh(f"scale_{n}")
            started = time.perf_counter()
            if kind == "sqlite":
                populate_sqlite(Path(url.removeprefix("sqlite:///")), n)
            else:
                populate_postgres(url, n)
            populate_s = time.perf_counter() - started
            print(f"{kind}: {n:,} leads, enrolments and touches in {populate_s:.1f} s",
                  file=sys.stderr, flush=True)
            idle_s = statistics.median(run_child(url, T0 - timedelta(seconds=1), 0, "idle")
                                       ["seconds"] for _ in range(repeat))
            for framing, due in (("1% due", max(n // 100, 1)), ("equal due", min(equal_due, n))):
                now = T0 + timedelta(seconds=due - 0.5)
                db = Database(make_engine(url))
                assert db.due_backlog(now)[0] == due, "the populated due times are off"
                db.engine.dispose()
                point = Point(kind, n, framing, due, populate_s=populate_s, idle_s=idle_s)
                ones = [run_child(url, now, due, "one") for _ in range(repeat)]
                batches = [run_child(url, now, due, "batches") for _ in range(repeat)]
                point.one_s = statistics.median(r["seconds"] for r in ones)
                point.batches_s = statistics.median(r["seconds"] for r in batches)
                point.hwm_mb = max(r["hwm_mb"] for r in ones + batches)
                point.rss_before_mb = statistics.median(r["rss_before_mb"] for r in ones)
                if explain and n == max(sizes):
                    point.plans = run_child(url, now, due, "one", explain=True)["plans"]
                points.append(point)
                print(f"  {framing:9} {due:>7,} due: {point.one_s * 1000:8.1f} ms in one call, "
                      f"{point.batches_s * 1000:8.1f} ms in batches of {BATCH}, peak "
                      f"{point.hwm_mb:.0f} MB", file=sys.stderr, flush=True)
    return points


def report(points: list[Point]) -> None:
    rows_ = [(p.db, p.size, p.framing, p.due, p.one_s * 1000, p.one_s * 1e6 / p.due,
              p.batches_s * 1000, p.idle_s * 1000, p.rss_before_mb, p.hwm_mb, p.populate_s)
             for p in points]
    print(table(["db", "leads", "framing", "due", "claim ms (one call)", "us per due row",
                 f"claim ms (batches of {BATCH})", "idle pass ms", "RSS before MB",
                 "peak RSS MB", "populate s"], rows_))
    print()
    for kind in sorted({p.db for p in points}, key=["sqlite", "postgres"].index):
        for framing in ("1% due", "equal due"):
            mine = sorted((p for p in points if p.db == kind and p.framing == framing),
                          key=lambda p: p.size)
            if len(mine) < 2:
                continue
            small, big = mine[0], mine[-1]
            ratio = big.one_s / small.one_s
            batched = big.batches_s / small.batches_s
            verdict = ("target < 2: " + ("met" if ratio < 2 else "MISSED")
                       if framing == "equal due" else "due work x"
                       f"{big.due // small.due}: compare us per due row")
            print(f"{kind:8} {framing:9} {big.size:,} vs {small.size:,} leads "
                  f"({big.due:,} vs {small.due:,} due): ratio {ratio:.2f} in one call, "
                  f"{batched:.2f} in batches ({verdict})")
    for kind in sorted({p.db for p in points}, key=["sqlite", "postgres"].index):
        mine = sorted((p for p in points if p.db == kind), key=lambda p: p.size)
        if mine[0].size != mine[-1].size:
            print(f"{kind:8} idle pass (nothing due: claim_due(limit={BATCH}) + next_due_at()): "
                  f"{mine[-1].idle_s * 1000:.1f} ms at {mine[-1].size:,} leads vs "
                  f"{mine[0].idle_s * 1000:.1f} ms at {mine[0].size:,}")
    peak = max(p.hwm_mb for p in points)
    print(f"peak RSS of a worker-sized process doing the pass: {peak:.0f} MB (target < 200 MB: "
          f"{'met' if peak < 200 else 'MISSED'})")
    for p in points:
        if p.plans:
            print(f"\nplans, {p.db}, {p.size:,} leads, {p.due:,} due ({p.framing}):")
            for plan in p.plans:
                print("  " + plan)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000",
                        help="comma-separated list sizes (default: %(default)s)")
    parser.add_argument("--db", default="sqlite,postgres", help="sqlite, postgres or both")
    parser.add_argument("--equal-due", type=int, default=10_000,
                        help="due rows at every size in the 'equal due' framing")
    parser.add_argument("--repeat", type=int, default=3, help="children per point (median)")
    parser.add_argument("--explain", action="store_true",
                        help="print the plans of the claim's statements at the largest size")
    parser.add_argument("--child", nargs=4, metavar=("URL", "NOW", "LIMIT", "MODE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        url, now, limit, mode = args.child
        child(url, now, int(limit), mode, args.explain)
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    points: list[Point] = []
    for kind in [d.strip() for d in args.db.split(",") if d.strip()]:
        if kind not in ("sqlite", "postgres"):
            parser.error(f"--db: unknown database {kind!r} (sqlite, postgres)")
        points += measure(kind, sizes, args.equal_due, args.repeat, args.explain)
    report(points)
    return 0


if __name__ == "__main__":
    sys.exit(main())
