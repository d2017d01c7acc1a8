"""Worker processes: the SQLite lock, SIGTERM during a burst, SIGKILL and restart, and several
workers sharing the work on a real PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import REPO, env_for, make_app, two_steps
from worker.adapters.db import models as m
from worker.app import App
from worker.domain.leads import parse_lead


def workspace(tmp: Path, server: ScriptedSmtpServer, **env: str) -> tuple[App, dict[str, str]]:
    two_steps(tmp, "burst")
    options = {"OUTBOUND__TRANSPORT": "smtp", "SMTP__HOST": "127.0.0.1",
               "SMTP__PORT": str(server.port), "SMTP__CONNECTIONS": "4",
               "SMTP__TIMEOUT_S": "5", "LOGGING__LEVEL": "INFO",
               "WORKER__RENDER_PROCESS": "true", **env}
    app = make_app(tmp, **options)
    return app, env_for(tmp, **options)


def enrol_many(app: App, count: int, campaign: str = "burst") -> None:
    """Leads and their enrolments in ``campaign``, in bulk, all due now (the API path is
    tested elsewhere)."""
    items = [(parse_lead({"email": f"lead{i}@burst.test"}), "test") for i in range(count)]
    for start in range(0, count, 500):
        results = app.db.upsert_leads(items[start:start + 500])
        now = app.clock.now()
        with app.db.session() as s:
            s.execute(m.Enrollment.__table__.insert(), [
                {"lead_id": r.lead_id, "campaign": campaign, "status": "active", "next_step": 0,
                 "next_due_at": now, "enrolled_at": now, "priority": 0, "attempts": 0,
                 "updated_at": now} for r in results])


def spawn(env: dict[str, str], tmp: Path, *args: str, name: str = "worker") -> subprocess.Popen[bytes]:
    log = open(tmp / f"{name}.log", "ab")
    return subprocess.Popen([sys.executable, "-m", "worker", "run", *args], cwd=tmp,
                            env={**os.environ, **env, "PYTHONPATH": str(REPO)}, stdout=log,
                            stderr=subprocess.STDOUT)


def wait_until(predicate, timeout_s: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def states(app: App) -> Counter[str]:
    with app.db.session() as s:
        return Counter(dict(s.execute(select(m.Touch.state, func.count()).group_by(m.Touch.state))
                            .all()))


def claimed(app: App) -> int:
    with app.db.session() as s:
        return int(s.scalar(select(func.count()).where(m.Enrollment.claimed_by.is_not(None))))


def test_a_second_sqlite_worker_refuses_to_start(tmp_path: Path,
                                                 smtp_server: ScriptedSmtpServer) -> None:
    _, env = workspace(tmp_path, smtp_server)
    first = spawn(env, tmp_path, name="first")
    try:
        wait_until(lambda: b"worker_start" in (tmp_path / "first.log").read_bytes(), 30,
                   "first worker start")
        second = spawn(env, tmp_path, name="second")
        assert second.wait(30) == 1
        log = (tmp_path / "second.log").read_text()
        assert "another `nurture run` is already using" in log and "Traceback" not in log
    finally:
        first.send_signal(signal.SIGTERM)
        assert first.wait(30) == 0


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_sigterm_during_a_burst_finishes_in_flight_mail_and_loses_nothing(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, loop: str) -> None:
    # Given 600 due mails and a worker sending them on either event loop
    app, env = workspace(tmp_path, smtp_server, WORKER__EVENT_LOOP=loop)
    enrol_many(app, 600)
    proc = spawn(env, tmp_path)
    # When SIGTERM arrives in the middle of the burst
    smtp_server.wait_for(100, 60)
    proc.send_signal(signal.SIGTERM)
    # Then the worker exits 0, with its claims released
    assert proc.wait(30) == 0
    assert claimed(app) == 0
    log = (tmp_path / "worker.log").read_text()
    assert "action=worker_stop" in log and f"loop={loop}" in log
    # And a second run sends the rest, nothing twice
    rest = subprocess.run([sys.executable, "-m", "worker", "run", "--once"], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, timeout=120)
    assert rest.returncode == 0, rest.stderr.decode()[-3000:]
    ids = smtp_server.message_ids()
    assert len(ids) == 600 and max(ids.values()) == 1
    assert states(app)["accepted"] == 600


def test_sigkill_and_restart_repeat_at_most_one_mail_per_connection(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given 800 due mails and a worker with 4 SMTP connections
    app, env = workspace(tmp_path, smtp_server)
    enrol_many(app, 800)
    proc = spawn(env, tmp_path)
    # When it is killed without warning mid-burst
    smtp_server.wait_for(150, 60)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    with app.db.session() as s:
        in_doubt = set(s.scalars(select(m.Touch.message_id).where(m.Touch.state == "handed_over")))
    assert len(in_doubt) <= 4
    # And restarted
    assert subprocess.run([sys.executable, "-m", "worker", "run", "--once"], cwd=tmp_path,
                          env={**os.environ, **env}, capture_output=True, timeout=120).returncode == 0
    # Then every lead got its mail; a repeat is only a mail in doubt, with the same Message-ID
    ids = smtp_server.message_ids()
    assert len(ids) == 800
    repeated = {mid.strip("<>") for mid, n in ids.items() if n > 1 and mid}
    assert repeated <= in_doubt
    assert states(app)["accepted"] == 800


@pytest.mark.postgres
@pytest.mark.parametrize("workers", [2, 4])
def test_workers_on_postgresql_share_the_work_without_sending_twice(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str, workers: int) -> None:
    # Given 2,000 due enrolments in PostgreSQL
    app, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url, SMTP__CONNECTIONS="3",
                         WORKER__BATCH_SIZE="50")
    enrol_many(app, 2000)
    # When several worker processes run at once
    procs = [spawn(env, tmp_path, name=f"w{i}") for i in range(workers)]
    try:
        smtp_server.wait_for(2000, 240)
        wait_until(lambda: states(app)["accepted"] == 2000, 60, "all recorded")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
    # Then every mail went out exactly once, and the work was shared
    ids = smtp_server.message_ids()
    assert len(ids) == 2000 and max(ids.values()) == 1
    assert codes == [0] * workers
    connections = {msg.connection_id for msg in smtp_server.messages}
    assert len(connections) > 3  # more than one worker's connections delivered
    assert claimed(app) == 0


@pytest.mark.postgres
def test_caps_hold_across_two_workers(tmp_path: Path, smtp_server: ScriptedSmtpServer,
                                      pg_url: str) -> None:
    app, env = workspace(tmp_path, smtp_server, DATABASE__URL=pg_url, SMTP__DAILY_CAP="120",
                         WORKER__BATCH_SIZE="40")
    enrol_many(app, 400)
    procs = [spawn(env, tmp_path, name=f"w{i}") for i in range(2)]
    try:
        smtp_server.wait_for(120, 120)
        wait_until(lambda: states(app)["accepted"] >= 120, 60, "recorded")
        time.sleep(2)  # give both workers the chance to overshoot, if they could
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        assert [proc.wait(60) for proc in procs] == [0, 0]
    assert len(smtp_server.messages) == 120
    with app.db.session() as s:
        capped = s.scalar(select(func.count()).where(m.Enrollment.status_reason.like("%at its cap%")))
    assert capped == 280
