"""Speed to lead: leads posted over HTTP at a steady rate, each timed from the POST to the
SMTP server accepting its first mail.

    python bench/speed_to_lead.py                      # 50 leads/s for 60 s on SQLite
    python bench/speed_to_lead.py --db postgres --seconds 20 --rate 50

A real `nurture run` (its own process) sends to an aiosmtpd sink in a thread of this
process, which records when each recipient's mail arrived; POSTs are timed with the same
monotonic clock. Posts are open-loop (one task per lead, on schedule), so a slow answer
does not slow the rate down. A few warm-up leads, not counted, open the SMTP connections
first. Target: p99 < 1 s on SQLite and PostgreSQL.

The worker is CPU-bound at this rate (about 15-20 ms of CPU per lead, in the worker and its
render process), so run it on a quiet machine: the load average is printed with the
figures, and other jobs on the same cores show up directly as queueing in the p95 and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.servers._util import free_port

TOKEN = "bench-token-" + secrets.token_hex(8)
CAMPAIGN = """
    name = "Speed to lead"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"

    [[step]]
    id = "report"
    wait = "0"
    window = false
    template = "01-report.md"
"""
TEMPLATE = """
    ---
    subject: "{{ lead.first_name | default('Hi') }}, your free report"
    ---
    Hello {{ lead.first_name | default("there") }}, here is the report you asked for.
"""


class Sink:
    """aiosmtpd in its own thread: the monotonic time each recipient's mail arrived."""

    def __init__(self) -> None:
        self.port = free_port()
        self.arrived: dict[str, float] = {}
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        now = time.monotonic()
        with self.lock:
            for rcpt in envelope.rcpt_tos:
                self.arrived.setdefault(rcpt.lower(), now)
        return "250 2.0.0 OK"

    def __enter__(self) -> Sink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


@dataclass
class Run:
    posted: dict[str, float] = field(default_factory=dict)
    answered: dict[str, float] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest rank."""
    if not sorted_values:
        return math.nan
    rank = max(math.ceil(p / 100 * len(sorted_values)), 1)
    return sorted_values[rank - 1]


def workspace(tmp: Path, db_url: str, smtp_port: int, http_port: int) -> dict[str, str]:
    folder = tmp / "campaigns" / "speed"
    folder.mkdir(parents=True)
    (folder / "campaign.toml").write_text(textwrap.dedent(CAMPAIGN).lstrip())
    (folder / "01-report.md").write_text(textwrap.dedent(TEMPLATE).lstrip())
    shutil.copytree(REPO / "templates", tmp / "templates")
    env = {k: v for k, v in os.environ.items() if not k.startswith("NURTURE_")}
    env.update({
        "NURTURE_CONFIG": str(REPO / "config" / "nurture.toml"),
        "NURTURE_DATABASE__URL": db_url,
        "NURTURE_CAMPAIGNS__DIR": str(tmp / "campaigns"),
        "NURTURE_TEMPLATES__DIR": str(tmp / "templates"),
        "NURTURE_OUTBOUND__TRANSPORT": "smtp",
        "NURTURE_SMTP__HOST": "127.0.0.1",
        "NURTURE_SMTP__PORT": str(smtp_port),
        "NURTURE_INBOUND__TRANSPORT": "maildir",
        "NURTURE_INBOUND__MAILDIR": str(tmp / "var" / "inbox"),
        "NURTURE_HTTP__PORT": str(http_port),
        "NURTURE_LOGGING__LEVEL": "WARNING",
        "NURTURE_SECRET_KEY": secrets.token_urlsafe(32),
        "NURTURE_API_TOKEN": TOKEN,
        "PYTHONPATH": str(REPO),
    })
    return env


async def post_lead(client: httpx.AsyncClient, run: Run, addr: str, at: float) -> None:
    await asyncio.sleep(max(at - time.monotonic(), 0))
    run.posted[addr] = time.monotonic()
    try:
        r = await client.post("/api/leads", json={"email": addr, "first_name": "Bench",
                                                   "campaign": "speed"})
        run.answered[addr] = time.monotonic()
        if r.status_code != 201:
            run.errors.append(f"{r.status_code} {r.text[:200]}")
    except httpx.HTTPError as exc:
        run.errors.append(f"{type(exc).__name__}: {exc}")


async def wait_for(sink: Sink, addrs: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with sink.lock:
            if all(a in sink.arrived for a in addrs):
                return
        await asyncio.sleep(0.05)


async def load(base_url: str, sink: Sink, rate: float, seconds: float, tag: str) -> Run:
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=100)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=httpx.Timeout(30, pool=None)) as client:
        async with asyncio.timeout(60):
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        warm = Run()
        warmups = [f"warm{i}-{tag}@bench.example" for i in range(10)]
        now = time.monotonic()
        await asyncio.gather(*(post_lead(client, warm, a, now + i * 0.05)
                               for i, a in enumerate(warmups)))
        await wait_for(sink, warmups, 30)
        run = Run()
        total = int(rate * seconds)
        start = time.monotonic() + 0.5
        tasks = [asyncio.create_task(post_lead(client, run, f"lead{i}-{tag}@bench.example",
                                               start + i / rate)) for i in range(total)]
        await asyncio.gather(*tasks)
        await wait_for(sink, list(run.posted), 60)
        return run


def report(run: Run, sink: Sink, rate: float, seconds: float, db: str) -> None:
    with sink.lock:
        arrived = dict(sink.arrived)
    latencies = sorted(arrived[a] - t for a, t in run.posted.items() if a in arrived)
    answers = sorted(run.answered[a] - t for a, t in run.posted.items() if a in run.answered)
    missing = len(run.posted) - len(latencies)
    print(f"speed to lead on {db}: {len(run.posted)} leads at {rate:g}/s for {seconds:g} s "
          f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
    print(f"  POST -> SMTP accepted   count={len(latencies)} missing={missing} "
          f"errors={len(run.errors)}")
    for name, values in (("POST -> SMTP accepted", latencies), ("POST -> 201 answer", answers)):
        print(f"  {name:<22}  p50={percentile(values, 50):.3f}s  p95={percentile(values, 95):.3f}s"
              f"  p99={percentile(values, 99):.3f}s  max={(values[-1] if values else math.nan):.3f}s")
    for error in run.errors[:5]:
        print(f"  error: {error}")
    p99 = percentile(latencies, 99)
    verdict = "meets" if p99 < 1.0 and not missing else "MISSES"
    print(f"  {verdict} the target (p99 < 1 s, every lead mailed)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=50.0, help="leads per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to post")
    parser.add_argument("--db", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (worker log)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="nurture-speed-"))
    cluster = None
    worker: subprocess.Popen[bytes] | None = None
    try:
        if args.db == "postgres":
            from tests.servers.postgres import PostgresCluster
            cluster = PostgresCluster().start()
            db_url = cluster.create_database("speed")
        else:
            db_url = f"sqlite:///{tmp}/var/nurture.db"
        with Sink() as sink:
            http_port = free_port()
            env = workspace(tmp, db_url, sink.port, http_port)
            cmd = [sys.executable, "-m", "worker"]
            subprocess.run([*cmd, "init"], cwd=tmp, env=env, check=True, capture_output=True)
            log = (tmp / "worker.log").open("wb")
            worker = subprocess.Popen([*cmd, "run"], cwd=tmp, env=env, stdout=log, stderr=log)
            run = asyncio.run(load(f"http://127.0.0.1:{http_port}", sink, args.rate,
                                   args.seconds, secrets.token_hex(3)))
            worker.send_signal(signal.SIGTERM)
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            code = worker.wait(30)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            report(run, sink, args.rate, args.seconds, args.db)
            cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            leads = len(run.posted) + 10
            print(f"  worker CPU (with its render process) {cpu:.1f} s in all, "
                  f"{cpu / leads * 1000:.1f} ms per lead")
            kept = f"; log: {tmp / 'worker.log'}" if args.keep else ""
            print(f"  worker exited {code}{kept}")
    finally:
        if worker is not None and worker.poll() is None:
            worker.kill()
        if cluster is not None:
            cluster.stop()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
