"""The chaos driver: worker processes on one PostgreSQL, killed with SIGKILL at random
moments and restarted; what the database held at each kill; the final accounting.

A kill proves something only while there is work, so the driver kills while due steps
remain. Right after a killed process is gone it notes that worker's mails in doubt (touches
``handed_over`` on enrolments it still claims: given to the SMTP server, answer not
recorded), then restarts it. At the end every step is checked against what the SMTP server
recorded: sent once, or sent again with the same Message-ID only as often as it was in
doubt at a kill.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, func, select

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import spawn
from tests.workspace import REPO
from worker.adapters.db import models as m
from worker.app import App

E, T = m.Enrollment, m.Touch


@dataclass
class Kill:
    """One SIGKILL and what the database said right after it."""

    number: int
    at: float                      # time.monotonic() of the signal
    slot: int
    pid: int
    worker_id: str | None          # None: killed before it registered
    in_doubt: frozenset[str]       # Message-IDs handed over by it, answer not recorded
    claims: int                    # enrolments it still claimed
    backlog: int                   # steps not yet recorded as sent, at the kill
    taken_over_s: float | None = None  # until no due enrolment was claimed by it any more
    helpers: tuple[int, ...] = ()  # its child processes (planning process, ...) at the kill
    orphans: int = 0               # of those, still alive seconds later (then killed here)


@dataclass
class Accounting:
    """Every step against what the SMTP server recorded."""

    steps: int
    once: int = 0
    duplicated: dict[str, int] = field(default_factory=dict)  # Message-ID -> copies
    lost: list[str] = field(default_factory=list)          # never reached the server
    unaccounted: list[str] = field(default_factory=list)   # database and server disagree
    unexplained: list[str] = field(default_factory=list)   # repeats no kill explains

    def summary(self) -> str:
        return (f"steps={self.steps} once={self.once} duplicated={len(self.duplicated)} "
                f"(extra copies {sum(n - 1 for n in self.duplicated.values())}) "
                f"lost={len(self.lost)} unaccounted={len(self.unaccounted)} "
                f"unexplained={len(self.unexplained)}")


class ChaosDriver:
    """``workers`` `nurture run` processes on the workspace in ``tmp`` (see tests.test_processes)."""

    def __init__(self, app: App, env: dict[str, str], tmp: Path, *, workers: int,
                 seed: int, campaign: str = "burst") -> None:
        self.app = app
        self.env = env
        self.tmp = tmp
        self.workers = workers
        self.rng = random.Random(seed)
        self.campaign = campaign
        self.procs: list[subprocess.Popen[bytes]] = []
        self.kills: list[Kill] = []
        self.crashes: list[str] = []   # workers that exited without being told to
        self.started_at = time.monotonic()

    # --- processes --------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, each logging to ``w<slot>.log`` in the workspace."""
        for slot in range(self.workers):
            self.procs.append(spawn(self.env, self.tmp, name=f"w{slot}"))
        self.started_at = time.monotonic()

    def wait_started(self, timeout_s: float = 120.0) -> None:
        """Until every current worker has logged its start (signal handlers installed: a
        SIGTERM during the imports before that ends a process with -15, see test_crash)."""
        deadline = time.monotonic() + timeout_s
        mark = b"action=worker_start worker="
        for slot, proc in enumerate(self.procs):
            needle = f":{proc.pid}:".encode()
            log = self.tmp / f"w{slot}.log"
            while not any(mark in line and needle in line
                          for line in log.read_bytes().splitlines()):
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise TimeoutError(f"worker w{slot} (pid {proc.pid}) did not start")
                time.sleep(0.1)

    def stop(self, timeout_s: float = 60.0) -> list[int]:
        """SIGTERM every worker; their exit codes."""
        self.wait_started()
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        return [proc.wait(timeout_s) for proc in self.procs]

    def kill_all(self) -> None:
        """Cleanup: nothing this driver started may outlive the test."""
        left: list[int] = []
        for proc in self.procs:
            if proc.poll() is None:
                left += descendants(proc.pid)
                proc.kill()
                proc.wait(10)
        self.reap_orphans(min_age_s=0.0)
        for pid in left:
            if orphaned(pid):
                os.kill(pid, signal.SIGKILL)

    def reap_orphans(self, min_age_s: float) -> int:
        """Helper processes of killed workers still alive ``min_age_s`` after the kill are
        orphans: count them on their kill and end them (they are this test's grandchildren)."""
        now = time.monotonic()
        for kill in self.kills:
            if not kill.helpers or now - kill.at < min_age_s:
                continue
            for pid in kill.helpers:
                if orphaned(pid):
                    kill.orphans += 1
                    os.kill(pid, signal.SIGKILL)
            kill.helpers = ()
        return sum(k.orphans for k in self.kills)

    def finish_once(self, timeout_s: float = 180.0) -> subprocess.CompletedProcess[bytes]:
        """`nurture run --once`: sends whatever is left, then exits."""
        return subprocess.run([sys.executable, "-m", "worker", "run", "--once"], cwd=self.tmp,
                              env={**os.environ, **self.env, "PYTHONPATH": str(REPO)},
                              capture_output=True, timeout=timeout_s)

    def kill_one(self) -> Kill:
        """SIGKILL a random worker, note what it left in doubt, start a new one in its slot."""
        slot = self.rng.randrange(len(self.procs))
        proc = self.procs[slot]
        helpers = tuple(descendants(proc.pid))
        at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        worker_id = self._worker_id(proc.pid)
        in_doubt, claims = self._in_doubt(worker_id) if worker_id else (frozenset(), 0)
        kill = Kill(len(self.kills) + 1, at, slot, proc.pid, worker_id, in_doubt, claims,
                    self.backlog(), taken_over_s=0.0 if claims == 0 else None, helpers=helpers)
        self.kills.append(kill)
        self.procs[slot] = spawn(self.env, self.tmp, name=f"w{slot}")
        return kill

    def run(self, *, min_kills: int, gap_s: tuple[float, float], timeout_s: float,
            log: Callable[[str], None] = lambda line: None) -> float:
        """Kill and restart until every step is recorded; the seconds it took.

        The kills fall at random points of the progress (so at least ``min_kills`` land
        while there is work, however fast or slow the machine is), at least a random
        ``gap_s`` apart, and at a random instant of whatever the workers are doing then."""
        deadline = time.monotonic() + timeout_s
        total = self.backlog()
        # Kill points as backlog levels, from 97 % down to 3 % of the work left: one in each of
        # ``min_kills`` equal slices, anywhere in its middle half, so that two points are at
        # least half a slice apart (uniform points could bunch up faster than ``gap_s``).
        points = kill_points(self.rng, total, min_kills)
        next_at = time.monotonic()
        while True:
            self.note_takeovers()
            self._note_crashes()
            self.reap_orphans(min_age_s=3.0)
            backlog = self.backlog()
            if backlog == 0:
                break
            now = time.monotonic()
            if now > deadline:
                raise TimeoutError(f"{backlog} steps left after {timeout_s:.0f}s; "
                                   f"{len(self.kills)} kills")
            if points and backlog <= points[0] and now >= next_at:
                points.pop(0)
                kill = self.kill_one()
                log(f"kill {kill.number:3d} t={kill.at - self.started_at:6.1f}s slot={kill.slot} "
                    f"pid={kill.pid} claims={kill.claims} in_doubt={len(kill.in_doubt)} "
                    f"backlog={kill.backlog}")
                next_at = time.monotonic() + self.rng.uniform(*gap_s)
            time.sleep(0.05)
        self.note_takeovers()
        if len(self.kills) < min_kills:
            raise AssertionError(f"the work ran out after {len(self.kills)} kills (wanted "
                                 f"{min_kills}, {len(points)} points left at "
                                 f"{points}): slow the server or lower gap_s")
        return time.monotonic() - self.started_at

    # --- what the database says ---------------------------------------------------------------

    def backlog(self) -> int:
        """Steps not yet recorded as sent (the first step of each enrolment)."""
        with self.app.db.session() as s:
            return int(s.scalar(select(func.count()).where(E.campaign == self.campaign,
                                                           E.next_step == 0)) or 0)

    def stale_claims(self) -> int:
        """Enrolments whose step was recorded as sent but that a killed worker still claims
        (a claim nobody will ever take over, since nothing is due)."""
        dead = [k.worker_id for k in self.kills if k.worker_id]
        with self.app.db.session() as s:
            return int(s.scalar(select(func.count()).where(E.claimed_by.in_(dead),
                                                           E.next_step != 0)) or 0)

    def _worker_id(self, pid: int) -> str | None:
        with self.app.db.session() as s:
            return s.scalar(select(m.WorkerRow.id).where(m.WorkerRow.pid == pid)
                            .order_by(m.WorkerRow.started_at.desc()).limit(1))

    def _in_doubt(self, worker_id: str) -> tuple[frozenset[str], int]:
        with self.app.db.session() as s:
            mids = s.scalars(select(T.message_id).join(E, E.id == T.enrollment_id).where(
                T.state == "handed_over", E.claimed_by == worker_id))
            claims = s.scalar(select(func.count()).where(E.claimed_by == worker_id,
                                                         E.next_step == 0))
            return frozenset(mid for mid in mids if mid), int(claims or 0)

    def note_takeovers(self) -> None:
        """Note, for each kill, when none of its due enrolments was claimed by it any more."""
        waiting = {k.worker_id: k for k in self.kills
                   if k.taken_over_s is None and k.worker_id is not None}
        if not waiting:
            return
        with self.app.db.session() as s:
            held = dict(s.execute(select(E.claimed_by, func.count())
                                  .where(E.claimed_by.in_(list(waiting)), E.next_step == 0)
                                  .group_by(E.claimed_by)).all())
        now = time.monotonic()
        for worker_id, kill in waiting.items():
            if not held.get(worker_id):
                kill.taken_over_s = now - kill.at

    def _note_crashes(self) -> None:
        for slot, proc in enumerate(self.procs):
            code = proc.poll()
            if code is not None:
                self.crashes.append(f"slot {slot} pid {proc.pid} exited {code} on its own "
                                    f"(see w{slot}.log)")
                self.procs[slot] = spawn(self.env, self.tmp, name=f"w{slot}")


def kill_points(rng: random.Random, total: int, n: int) -> list[int]:
    """``n`` backlog levels between 97 % and 3 % of ``total``, highest first: one in the
    middle half of each of ``n`` equal slices, so neighbours are at least half a slice apart."""
    width = 0.94 / n
    return [round((0.97 - (i + rng.uniform(0.25, 0.75)) * width) * total) for i in range(n)]


def descendants(pid: int) -> list[int]:
    """Every live process below ``pid`` (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            children[int(fields[1])].append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def orphaned(pid: int) -> bool:
    """Whether ``pid`` is alive (not a zombie) and was adopted by init (its parent died)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] != "Z" and fields[1] == "1"


def account(app: App, server: ScriptedSmtpServer, kills: list[Kill], *, campaign: str = "burst",
            step: str = "one") -> Accounting:
    """Each enrolment's ``step`` against the server's record of Message-IDs."""
    with app.db.session() as s:
        rows = s.execute(select(E.id, E.next_step, T.message_id, T.state).select_from(E)
                         .outerjoin(T, and_(T.enrollment_id == E.id, T.step_id == step))
                         .where(E.campaign == campaign)).all()
    copies: Counter[str] = Counter()
    recipients: dict[str, set[tuple[str, ...]]] = defaultdict(set)
    for msg in server.messages:
        mid = (msg.message_id or "").strip().strip("<>")
        copies[mid] += 1
        recipients[mid].add(msg.rcpt_tos)
    in_doubt_at: Counter[str] = Counter(mid for kill in kills for mid in kill.in_doubt)
    result = Accounting(steps=len(rows))
    expected: set[str] = set()
    for row in rows:
        if row.message_id is None:
            result.lost.append(f"enrollment {row.id}: no touch for step {step!r}")
            continue
        mid = row.message_id
        expected.add(mid)
        n = copies.get(mid, 0)
        if n == 0:
            result.lost.append(f"{mid}: never reached the server (state {row.state})")
        elif n == 1:
            result.once += 1
        else:
            result.duplicated[mid] = n
            if n - 1 > in_doubt_at[mid] or len(recipients[mid]) != 1:
                result.unexplained.append(f"{mid}: {n} copies, in doubt at {in_doubt_at[mid]} "
                                          f"kill(s), recipients {sorted(recipients[mid])}")
        if n and (row.state != "accepted" or row.next_step != 1):
            result.unaccounted.append(f"{mid}: sent, but recorded as {row.state} with "
                                      f"next_step {row.next_step}")
    for mid in copies:
        if mid not in expected:
            result.unaccounted.append(f"{mid or '(no Message-ID)'}: at the server, but no "
                                      "step has this Message-ID")
    return result
