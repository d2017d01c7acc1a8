"""The crash suite: worker processes on PostgreSQL killed with SIGKILL at random moments.

Every due step must be accounted for afterwards: sent exactly once, or, only for a mail
that a killed worker had handed over without recording the answer, sent again with the same
Message-ID. A dead worker's claims must be taken over within 30 seconds.

The default run is short enough for CI (1,500 steps, 10 kills, the SMTP server answering each
DATA after 0.12 s so that the kills land while there is work). The long run is
``NURTURE_CHAOS_LONG=1`` (10,000 steps, 50 kills). ``NURTURE_CHAOS_SEED`` replays a run's
kill schedule (which worker, at which point of the work); the seed is printed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.chaos.driver import ChaosDriver, account, descendants, orphaned
from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import enrol_many, spawn, wait_until, workspace
from tests.workspace import FakeClock, make_app
from worker.adapters.db import models as m
from worker.app import App
from worker.domain.send_rows import Outcome
from worker.engine.runner import Runner

pytestmark = pytest.mark.postgres

LONG = os.environ.get("NURTURE_CHAOS_LONG") == "1"
SEED = int(os.environ.get("NURTURE_CHAOS_SEED", "20261123"))
STEPS, MIN_KILLS = (10_000, 50) if LONG else (1_500, 10)
WORKERS = 4
CONNECTIONS = 3
# A short lease so that the killed workers' claims come back quickly; the default (30 s) is
# shown on its own below.
LEASE_S = 10
# Each DATA is answered after PACE_S, so the workers send at most WORKERS * CONNECTIONS /
# PACE_S = 100 mails a second, however fast the machine: the kill points (at least 70 steps
# apart) are then more than the longest gap between two kills (0.6 s) apart in time, and
# every kill lands while there is work.
PACE_S = 0.12
GAP_S = (0.2, 0.6)
E = m.Enrollment
R = TypeVar("R")


def test_sigkill_chaos_loses_nothing_and_repeats_only_mails_in_doubt(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given STEPS due steps on PostgreSQL, four workers with three SMTP connections each,
    # and an SMTP server that records every Message-ID it accepts
    app, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url,
                         SMTP__CONNECTIONS=str(CONNECTIONS), WORKER__BATCH_SIZE="50",
                         WORKER__LEASE_S=str(LEASE_S))
    enrol_many(app, STEPS)
    smtp_server.stall(PACE_S, n=2 * STEPS)
    driver = ChaosDriver(app, env, tmp_path, workers=WORKERS, seed=SEED)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if LONG:
            with capsys.disabled():
                print(line, flush=True)

    say(f"\nchaos: seed={SEED} (replay with NURTURE_CHAOS_SEED={SEED}) steps={STEPS} "
        f"workers={WORKERS} connections={CONNECTIONS} lease_s={LEASE_S} long={LONG}")
    driver.start()
    try:
        # When a random worker is killed with SIGKILL at random moments and restarted,
        # at least MIN_KILLS times while there is work left
        took = driver.run(min_kills=MIN_KILLS, gap_s=GAP_S,
                          timeout_s=1800 if LONG else 240, log=say)
        # And every worker is stopped with SIGTERM, and one `run --once` finishes the rest
        codes = driver.stop()
        once = driver.finish_once()
    finally:
        driver.kill_all()
    result = account(app, smtp_server, driver.kills)
    kills = driver.kills
    orphans = driver.reap_orphans(0.0)
    takeovers = [k.taken_over_s for k in kills if k.claims]
    extra = sum(n - 1 for n in result.duplicated.values())
    say(f"chaos result: {result.summary()}")
    say(f"chaos: kills={len(kills)} duration={took:.1f}s rate={STEPS / took:.0f} steps/s "
        f"in_doubt_at_kills={sum(len(k.in_doubt) for k in kills)} "
        f"max_in_doubt={max(len(k.in_doubt) for k in kills)} "
        f"takeover_s max={max((t or 0) for t in takeovers):.1f} "
        f"median={statistics.median([t or 0 for t in takeovers] or [0]):.1f} "
        f"stale_claims={driver.stale_claims()} crashes={len(driver.crashes)} "
        f"orphaned_helpers={orphans} "
        f"exit_codes={codes} once_exit={once.returncode}")
    with capsys.disabled():
        if not LONG:
            print("\n".join(lines[:1] + lines[-2:]))
    # Then nothing was lost, and the database and the server agree on every step
    assert result.lost == [], result.lost[:10]
    assert result.unaccounted == [], result.unaccounted[:10]
    assert result.once + len(result.duplicated) == STEPS
    # And every repeat is a mail that a killed worker had handed over without recording the
    # answer (in doubt at as many kills as it has extra copies), to the same recipient
    assert result.unexplained == [], result.unexplained[:10]
    assert extra <= len(kills) * CONNECTIONS
    # And every dead worker's claims on due steps were taken over within 30 seconds
    assert all(t is not None and t <= 30.0 for t in takeovers), takeovers
    # And no worker died on its own; SIGTERM and --once end with 0
    assert driver.crashes == []
    assert codes == [0] * WORKERS
    assert once.returncode == 0, once.stdout[-2000:]
    assert len(kills) >= MIN_KILLS


def test_a_dead_workers_claims_are_taken_over_within_30_s_with_the_default_lease(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str,
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a worker with the default lease (30 s) and heartbeat (5 s) that claimed 60 due
    # steps and sends them slowly (each DATA answered after 0.5 s)
    app, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url, SMTP__CONNECTIONS="2",
                         WORKER__LEASE_S="30", WORKER__HEARTBEAT_S="5")
    enrol_many(app, 60)
    smtp_server.stall(0.5, n=1000)
    driver = ChaosDriver(app, env, tmp_path, workers=1, seed=SEED)
    driver.start()
    try:
        wait_until(lambda: len(smtp_server.messages) >= 4, 60, "first mails")
        # When it is killed with SIGKILL, and a second worker starts at once
        kill = driver.kill_one()
        assert kill.claims > 0
        smtp_server.clear_scripts()
        deadline = time.monotonic() + 45
        while kill.taken_over_s is None and time.monotonic() < deadline:
            driver.note_takeovers()
            time.sleep(0.05)
        # Then its claims are taken over within 30 seconds of its death
        taken = kill.taken_over_s
        wait_until(lambda: driver.backlog() == 0, 60, "the rest sent")
        codes = driver.stop()
    finally:
        driver.kill_all()
    with capsys.disabled():
        print(f"\ntakeover with the default lease: {taken}s after SIGKILL "
              f"(claims={kill.claims}, in_doubt={len(kill.in_doubt)})")
    assert taken is not None and taken <= 30.0
    assert taken >= 15.0  # the lease, not a release, freed them (renewed every 5 s)
    # And everything went out once, or again only if it was in doubt at the kill
    result = account(app, smtp_server, driver.kills)
    assert result.lost == [] and result.unaccounted == [] and result.unexplained == []
    assert codes == [0]


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a handler for SIGTERM (its SigCgt mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


def test_sigterm_while_a_worker_starts_up_exits_0(tmp_path: Path,
                                                  smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker process that was started a moment ago (still importing)
    _, env = workspace(tmp_path, smtp_server)
    proc = spawn(env, tmp_path)
    # (as soon as Python runs our first line, which catches SIGTERM before the heavy imports;
    # before that no Python program can: a fixed sleep raced the interpreter's start on a
    # loaded machine)
    deadline = time.monotonic() + 30
    while not _catches_sigterm(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.005)
    # When SIGTERM arrives before the runner installed its signal handlers
    proc.send_signal(signal.SIGTERM)
    # Then it stops anyway, and cleanly (SPEC: "SIGTERM ... exits 0")
    code = proc.wait(60)
    assert code == 0, f"exit {code}: {(tmp_path / 'worker.log').read_text()[-500:]}"


def test_a_killed_worker_leaves_no_process_behind(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str) -> None:
    # Given a worker (with its render process, the default) busy sending
    app, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url,
                         WORKER__RENDER_PROCESS="true")
    enrol_many(app, 300)
    proc = spawn(env, tmp_path)
    helpers: list[int] = []
    try:
        smtp_server.wait_for(20, 60)
        helpers = descendants(proc.pid)
        # When it is killed with SIGKILL
        proc.kill()
        proc.wait(30)
        time.sleep(5)
        # Then none of its processes is left running
        left = [pid for pid in helpers if orphaned(pid)]
    finally:
        for pid in helpers:
            if orphaned(pid):
                os.kill(pid, signal.SIGKILL)
    assert left == []


# --- a worker whose lease ran out while its mail was with the SMTP server -------------------
#
# A worker that cannot renew its claims for lease_s (stalled, cut off from the database) is
# taken for dead: another worker claims its enrolment and plans the same mail. The first one
# then records the server's answer. These two tests set up exactly that interleaving.

RACE_ENV = {"WORKER__LEASE_S": "30"}


def _lease_race(tmp_path: Path, smtp_server: ScriptedSmtpServer,
                pg_url: str) -> tuple[App, App, int, FakeClock]:
    """Worker B hands a mail over and stalls past its lease; worker A (a Runner on app A)
    will claim the enrolment and plan the same mail, and B records the server's 250 right
    after A planned it, before A hands it over."""
    clock = FakeClock()
    _, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url, **RACE_ENV)
    options = {k.removeprefix("NURTURE_"): v for k, v in env.items()
               if k.startswith("NURTURE_")}
    app_b, app_a = make_app(tmp_path, clock, **options), make_app(tmp_path, clock, **options)
    enrol_many(app_b, 1)
    now = clock.now()
    [job_b] = app_b.planner.prepare(app_b.db.claim_due("B", now, 10, 30), now)
    assert app_b.db.record("B", [], [job_b.envelope.message_id])
    clock.advance(seconds=31)
    record = app_a.planner.record

    def plan_then_b_records(planned: Any, at: Any) -> Any:
        jobs = record(planned, at)
        app_b.db.record("B", [Outcome(job_b.envelope.message_id, job_b.enrollment_id,
                                      job_b.lead_id, "accepted", 250, "2.0.0 OK",
                                      job_b.success)], [])
        return jobs

    app_a.planner.record = plan_then_b_records  # type: ignore[method-assign]
    return app_a, app_b, job_b.enrollment_id, clock


def _run_a_until_withdrawn(app_a: App, linger_s: float,
                           look: Callable[[], R]) -> tuple[R, Runner]:
    """Run worker A until its hand-over was withdrawn, ``linger_s`` more, ``look()``, stop."""
    runner = app_a.make_runner()

    async def scenario() -> R:
        task = asyncio.create_task(runner.run())
        try:
            while runner.stats["withdrawn"] == 0:
                await asyncio.sleep(0.05)
            await asyncio.sleep(linger_s)
            return await asyncio.to_thread(look)
        finally:
            runner.stop()
            assert await asyncio.wait_for(task, 30) == 0

    return asyncio.run(asyncio.wait_for(scenario(), 60)), runner


def test_the_next_step_keeps_its_wait_when_the_sender_lost_its_claim_meanwhile(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str) -> None:
    # Given worker B's mail accepted while worker A held the claim (B's lease had run out),
    # and A stopped after its own hand-over of that mail was withdrawn
    app_a, app_b, enrollment_id, clock = _lease_race(tmp_path, smtp_server, pg_url)
    _run_a_until_withdrawn(app_a, 0.0, lambda: None)
    # When any worker looks for due work right after
    asyncio.run(app_b.make_runner(once=True).run())
    # Then step two ("wait = 30d") is not sent: it is due 30 days after step one
    with app_b.db.session() as s:
        row = s.get(E, enrollment_id)
        assert row is not None
        step, due = row.next_step, row.next_due_at
    assert [msg.message_id for msg in smtp_server.messages] == []
    assert step == 1 and due is not None and due > clock.now() + timedelta(days=29)


def test_a_withdrawn_mail_does_not_keep_its_enrolment_claimed(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str) -> None:
    # Given the same race, with worker A running on after its hand-over was withdrawn
    app_a, _, enrollment_id, _ = _lease_race(tmp_path, smtp_server, pg_url)

    def holder() -> str | None:
        with app_a.db.session() as s:
            row = s.get(E, enrollment_id)
            assert row is not None
            return row.claimed_by

    # When some heartbeats (which renew A's claims) have passed
    held, runner = _run_a_until_withdrawn(app_a, 3 * app_a.settings.worker.heartbeat_s + 0.5,
                                          holder)
    # Then A does not hold the enrolment any more
    assert runner.stats["withdrawn"] == 1
    assert held is None
