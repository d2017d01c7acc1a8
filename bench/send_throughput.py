"""Send throughput: N enrolments due at once, the worker sending them to Postfix's smtp-sink,
against a baseline in the same run: a bare aiosmtplib loop with the same number of
connections sending pre-built messages to the same sink.

    python bench/send_throughput.py [--count 10000] [--connections 10] [--db sqlite|postgres]
                                    [--profile FILE] [--realistic]

``--realistic`` is a user's campaign started as a user starts it (see bench/_realistic.py):
leads imported from a CSV with `nurture leads import`, one step of about 4 KB of Markdown in
the shipped layout, `nurture run` as a subprocess. Its worker rate counts from the first mail
the sink accepts (the interpreter's start-up and the catalog's compile are reported apart).

Prints messages per second for both and the ratio (target: the worker at 70% or more of the
bare loop at 10,000 messages).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiosmtplib

from bench import _realistic
from tests.servers.postgres import PostgresCluster
from tests.servers.smtpsink import SmtpSink
from tests.workspace import make_app, write_campaign
from worker.adapters.db import models as m
from worker.app import App
from worker.domain.leads import parse_lead
from worker.domain.model import Lead
from worker.domain.sequence import TouchPlan
from worker.ports import Envelope

CAMPAIGN = """
name = "Throughput"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
[[step]]
id = "one"
wait = "0"
template = "one.md"
[[step]]
id = "two"
wait = "30d"
template = "one.md"
"""
TEMPLATE = """---
subject: "{{ lead.first_name | default('Hi') }}, your free report"
preheader: The 7 follow-up mistakes, in one page
---
Hello {{ lead.first_name | default("there") }},

thanks for asking about **follow-up** at {{ lead.company | default("your team") }}. Here is
[the report](https://acme.example/report) with the seven mistakes that lose deals.

- Waiting too long
- Stopping after two touches
- Asking "just checking in"

Dana
"""


def prebuilt(app: App, count: int, slug: str = "bench") -> list[Envelope]:
    """The very mails the worker sends (same template, leads and headers), built beforehand,
    so the baseline moves the same bytes and the difference is what the worker adds."""
    campaign = app.catalog.get(slug)
    now = app.clock.now()
    return [app.factory.build(campaign, TouchPlan(campaign.steps[0], "email"),
                              Lead(f"lead{i}@bench.test", id=i + 1, first_name=f"Lead{i}",
                                   company="Bench Co"), i + 1, now)[0] for i in range(count)]


async def bare_loop(port: int, messages: list[Envelope], connections: int) -> float:
    queue: asyncio.Queue[Envelope] = asyncio.Queue()
    for msg in messages:
        queue.put_nowait(msg)

    async def channel() -> None:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port)
        await client.connect()
        while not queue.empty():
            env = queue.get_nowait()
            await client.sendmail(env.mail_from, [env.rcpt_to], env.data)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(channel() for _ in range(connections)))
    return len(messages) / (time.perf_counter() - start)


def enrol(app: object, count: int) -> None:
    items = [(parse_lead({"email": f"lead{i}@bench.test", "first_name": f"Lead{i}",
                          "company": "Bench Co"}), "bench") for i in range(count)]
    db = app.db  # type: ignore[attr-defined]
    for start in range(0, count, 2000):
        results = db.upsert_leads(items[start:start + 2000])
        now = app.clock.now()  # type: ignore[attr-defined]
        with db.session() as s:
            s.execute(m.Enrollment.__table__.insert(), [
                {"lead_id": r.lead_id, "campaign": "bench", "status": "active", "next_step": 0,
                 "next_due_at": now, "enrolled_at": now, "priority": 0, "attempts": 0,
                 "updated_at": now} for r in results])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--profile", metavar="FILE")
    parser.add_argument("--realistic", action="store_true",
                        help="CSV import, a 4 KB step in the shipped layout, `nurture run`")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop",
                        help="event loop for both runs (the worker's worker.event_loop)")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if args.realistic:
        return realistic(args)
    tmp = Path(tempfile.mkdtemp(prefix="nurture-throughput-"))
    cluster = PostgresCluster().start() if args.db == "postgres" else None
    sink = SmtpSink().start()
    try:
        write_campaign(tmp / "campaigns", "bench", CAMPAIGN, {"one.md": TEMPLATE})
        url = cluster.create_database("throughput") if cluster else f"sqlite:///{tmp}/n.db"
        app = make_app(tmp, DATABASE__URL=url, OUTBOUND__TRANSPORT="smtp",
                       SMTP__HOST="127.0.0.1", SMTP__PORT=str(sink.port),
                       SMTP__CONNECTIONS=str(args.connections), LOGGING__LEVEL="WARNING",
                       WORKER__RENDER_PROCESS=os.environ.get("RENDER", "true"))
        bare = asyncio.run(bare_loop(sink.port, prebuilt(app, args.count), args.connections))
        before = sink.count
        runner = app.make_runner()  # as `nurture run`: with its render process

        async def scenario() -> float:
            task = asyncio.create_task(runner.run())
            while app.settings.worker.render_process and not runner.renderer_ready:
                await asyncio.sleep(0.05)
            await asyncio.to_thread(enrol, app, args.count)
            start = time.perf_counter()
            cpu0 = time.process_time()
            runner.wake()
            while sink.count < before + args.count:
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - start
            runner.timings["worker_cpu_s"] = time.process_time() - cpu0
            runner.stop()
            await task
            return elapsed

        if args.profile:
            profiler = cProfile.Profile()
            elapsed = profiler.runcall(asyncio.run, scenario())
            profiler.dump_stats(args.profile)
        else:
            elapsed = asyncio.run(scenario())
        worker = args.count / elapsed
        accepted = runner.stats["accepted"]
        where = (f"planning {runner.timings['plan_s']:.2f}s, SMTP {runner.timings['smtp_s']:.2f}s "
                 f"(summed over connections), {runner.ledger.commits} ledger commits "
                 f"({runner.ledger.committed / max(runner.ledger.commits, 1):.1f} mails each, "
                 f"{runner.ledger.commit_s:.2f}s)")
    finally:
        sink.stop()
        if cluster:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"messages: {args.count}, connections: {args.connections}, database: {args.db}, "
          f"event loop: {args.loop} (both runs)")
    print(f"bare aiosmtplib loop : {bare:8.0f} msgs/s (the same mails, built beforehand)")
    print(f"nurture worker       : {worker:8.0f} msgs/s (render, build, record; {accepted} "
          "accepted)")
    print(f"ratio worker/bare    : {worker / bare:8.2f}  (target >= 0.70)")
    print(f"worker time: {elapsed:.2f}s, of which the worker's process used "
          f"{runner.timings['worker_cpu_s']:.2f}s of CPU; {where}")
    d = sorted(runner.ledger.durations)
    if d:
        print(f"ledger commit ms: p50 {d[len(d) // 2] * 1000:.2f} p90 "
              f"{d[int(len(d) * .9)] * 1000:.2f} p99 {d[int(len(d) * .99)] * 1000:.2f} "
              f"max {d[-1] * 1000:.2f}")
    return 0


def realistic(args: argparse.Namespace) -> int:
    """The realistic shape: the worker as a subprocess started by the CLI."""
    tmp = Path(tempfile.mkdtemp(prefix="nurture-throughput-"))
    cluster = PostgresCluster().start() if args.db == "postgres" else None
    sink = SmtpSink().start()
    try:
        write_campaign(tmp / "campaigns", "bench", _realistic.CAMPAIGN,
                       {"one.md": _realistic.template()})
        url = cluster.create_database("throughput") if cluster else f"sqlite:///{tmp}/n.db"
        conf = {"DATABASE__URL": url, "OUTBOUND__TRANSPORT": "smtp", "SMTP__HOST": "127.0.0.1",
                "SMTP__PORT": str(sink.port), "SMTP__CONNECTIONS": str(args.connections),
                "LOGGING__LEVEL": "WARNING", "WORKER__RENDER_PROCESS": "true"}
        env = _realistic.environment(tmp, **conf)
        app = make_app(tmp, **conf)
        bare = asyncio.run(bare_loop(sink.port, prebuilt(app, args.count), args.connections))
        app.db.engine.dispose()
        _realistic.write_csv(tmp / "leads.csv", args.count)
        started = time.perf_counter()
        _realistic.cli(tmp, env, "leads", "import", str(tmp / "leads.csv"), "--campaign", "bench")
        imported = time.perf_counter() - started
        steady, total = _realistic.run_worker(tmp, env, sink, args.count)
    finally:
        sink.stop()
        if cluster:
            cluster.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    worker = args.count / steady
    print(f"realistic shape: {len(_realistic.template().encode())} B of Markdown in the shipped "
          f"layout; messages: {args.count}, connections: {args.connections}, database: "
          f"{args.db}, event loop: {args.loop} (bare loop), load average "
          f"{os.getloadavg()[0]:.2f}")
    print(f"bare aiosmtplib loop : {bare:8.0f} msgs/s (the same mails, built beforehand)")
    print(f"nurture run          : {worker:8.0f} msgs/s (first to last mail accepted)")
    print(f"ratio worker/bare    : {worker / bare:8.2f}  (target >= 0.70 SQLite, >= 0.50 "
          "PostgreSQL)")
    print(f"leads import: {imported:.2f}s; nurture run: {total:.2f}s from start to the last "
          f"mail, {total - steady:.2f}s of it before the first mail")
    return 0


if __name__ == "__main__":
    sys.exit(main())
