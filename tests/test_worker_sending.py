"""The sending engine under a slow or throttling server, as `nurture run` (a subprocess): the
loop is idle while mail waits on SMTP, one throttling episode slows a mailbox down once, and a
deferred mail is not counted as sent."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import enrol_many, spawn, wait_until, workspace
from tests.workspace import env_for, make_app, run_once, two_steps
from worker.adapters.db import models as m
from worker.engine.dispatch import Pause, throttle_after

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def stop(proc: subprocess.Popen[bytes], log: Path) -> str:
    assert proc.poll() is None, log.read_text()[-3000:]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 0
    return log.read_text()


def test_a_worker_waiting_on_a_slow_server_is_idle(tmp_path: Path,
                                                   smtp_server: ScriptedSmtpServer) -> None:
    # Given due mails and a server that takes 8 s to answer each DATA
    app, env = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="2", SMTP__TIMEOUT_S="30",
                         WORKER__RENDER_PROCESS="false")
    enrol_many(app, 20)
    smtp_server.stall(8.0, n=20)
    proc = spawn(env, tmp_path)
    log = tmp_path / "worker.log"
    try:
        # When the worker has handed its first mails over and waits for the answers
        wait_until(lambda: b"action=worker_start" in log.read_bytes(), 30, "worker start")
        wait_until(lambda: smtp_server.connections >= 3, 30, "the channels connected")
        time.sleep(1.0)
        before, started = cpu_s(proc.pid), time.monotonic()
        time.sleep(4.0)
        used = (cpu_s(proc.pid) - before) / (time.monotonic() - started)
        text = stop(proc, log)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it is idle: no loop spinning on its own in-flight enrolments
    print(f"\nCPU while waiting on SMTP: {used:.3f} CPU-s/s")
    assert used < 0.15, (used, text[-2000:])
    assert smtp_server.messages == [] or len(smtp_server.messages) <= 4


def test_one_throttling_episode_raises_the_pause_once() -> None:
    # Ten channels' sends, all started before the first throttling answer came back
    started = [100.0 + i * 0.01 for i in range(10)]
    pause = None
    for i, at in enumerate(started):
        after = throttle_after(pause, 101.0 + i * 0.0004, at)
        if after is not None:
            pause = after
    assert pause is not None and pause.until - pause.since == 2.0
    # A send made after that pause began, throttled again: the next episode doubles it
    pause = throttle_after(pause, 103.5, 103.2)
    assert pause is not None and pause.until - pause.since == 4.0
    assert throttle_after(pause, 103.6, 103.1) is None  # an answer to the same episode
    # And it keeps doubling up to 60 s, and starts over after a quiet minute
    for at in range(104, 120):
        pause = throttle_after(pause, at + 0.5, at) or pause
    assert pause.until - pause.since == 60.0
    pause = throttle_after(pause, pause.until + 61, pause.until + 60.9)
    assert pause is not None and pause.until - pause.since == 2.0
    # And after a mail was accepted in between (the episode is over), from 2 s again
    pause = throttle_after(Pause(200.0, 216.0, recovered=True), 220.0, 217.0)
    assert pause is not None and pause.until - pause.since == 2.0


def test_ten_channels_throttled_at_once_pause_the_mailbox_once(
        tmp_path: Path, smtp_server: ScriptedSmtpServer,
        caplog: pytest.LogCaptureFixture) -> None:
    # Given ten due mails on ten connections, and a server that throttles all ten at once
    app, _ = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="10", SMTP__RETRIES="1",
                       WORKER__RENDER_PROCESS="false")
    enrol_many(app, 10)
    smtp_server.fail_next(10, "421 4.7.0 Too many messages from your IP, slow down",
                          after_s=1.5)
    # When the worker sends them
    with caplog.at_level(logging.INFO, logger="worker"):
        run_once(app)
    # Then all ten were deferred, and the mailbox paused once for 2 s (not doubled ten times)
    pauses = [r.getMessage() for r in caplog.records if "action=mailbox_throttled" in
              r.getMessage()]
    deferred = [r for r in caplog.records if "action=send_deferred" in r.getMessage()]
    assert len(deferred) == 10 and smtp_server.messages == []
    assert pauses == ["action=mailbox_throttled mailbox=default pause_s=2.0"], pauses


def nurture(tmp: Path, env: dict[str, str], *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "worker", *args], cwd=tmp, capture_output=True,
                          env={**os.environ, **env}, timeout=60, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_deferred_mail_is_not_counted_or_shown_as_sent(tmp_path: Path,
                                                         smtp_server: ScriptedSmtpServer) -> None:
    # Given two due mails, one of which the server defers (451)
    app, env = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="1", SMTP__RETRIES="1",
                         WORKER__RENDER_PROCESS="false")
    enrol_many(app, 2)
    smtp_server.fail_next(1, "451 4.3.0 Temporary lookup failure")
    # When the worker sends them
    run_once(app)
    assert len(smtp_server.messages) == 1
    sent_to = smtp_server.messages[0].rcpt_tos[0]
    deferred = next(a for a in ("lead0@burst.test", "lead1@burst.test") if a != sent_to)
    # Then the report counts one sent mail: the one the server accepted
    report = json.loads(nurture(tmp_path, env, "report", "--json"))
    [burst] = [c for c in report["campaigns"] if c["campaign"] == "burst"]
    assert {s["step"]: s.get("sent", 0) for s in burst["steps"]}["one"] == 1
    # And `lead show` does not list the deferred mail as sent, but with the server's answer
    shown = json.loads(nurture(tmp_path, env, "lead", "show", deferred, "--json"))
    [touch] = shown["enrollments"][0]["touches"]
    assert touch["state"] == "planned" and touch["sent_at"] is None, touch
    assert touch["smtp_code"] == 451
    text = nurture(tmp_path, env, "lead", "show", deferred)
    assert "email sent" not in text
    # And the retry later goes out with the same Message-ID
    with app.db.session() as s:
        s.execute(update(m.Enrollment).where(m.Enrollment.attempts > 0)
                  .values(next_due_at=app.clock.now()))
    run_once(app)
    ids = smtp_server.message_ids()
    assert len(ids) == 2 and max(ids.values()) == 1
    assert f"<{touch['message_id']}>" in ids


def test_leads_list_shows_no_next_step_for_replied_or_bounced_enrolments(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given three enrolments at their first step: one active, one replied, one bounced
    app, env = workspace(tmp_path, smtp_server)
    enrol_many(app, 3)
    with app.db.session() as s:
        for i, status in ((1, "replied"), (2, "bounced")):
            lead = s.scalars(select(m.Lead).where(m.Lead.email == f"lead{i}@burst.test")).one()
            s.execute(update(m.Enrollment).where(m.Enrollment.lead_id == lead.id)
                      .values(status=status))
    # When the leads are listed
    rows = {line.split("│")[1].strip(): [c.strip() for c in line.split("│")[2:-1]]
            for line in nurture(tmp_path, env, "leads", "list").splitlines()
            if "@burst.test" in line}
    # Then only the active one shows a next step
    assert rows["lead0@burst.test"][:3] == ["burst", "active", "one"]
    assert rows["lead1@burst.test"][:3] == ["burst", "replied", "-"]
    assert rows["lead2@burst.test"][:3] == ["burst", "bounced", "-"]


def test_a_mail_over_the_size_cap_is_failed_before_sending_with_the_reason(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a campaign whose mail renders to about 60 KB, and a cap of 20 KB
    app, _ = workspace(tmp_path, smtp_server, SMTP__MAX_MESSAGE_BYTES="20000",
                       WORKER__RENDER_PROCESS="false")
    template = tmp_path / "campaigns" / "burst" / "one.md"
    template.write_text(template.read_text() + "\n\n" + "All work and no play. " * 2700)
    enrol_many(app, 1)
    # When the worker sends it
    run_once(app)
    # Then nothing reached the server, and the step failed with the reason recorded
    assert smtp_server.messages == []
    with app.db.session() as s:
        touch = s.scalars(select(m.Touch)).one()
        enrolment = s.scalars(select(m.Enrollment)).one()
    assert touch.state == "failed" and enrolment.status == "failed"
    assert "over smtp.max_message_bytes (20000)" in (touch.smtp_response or "")
    assert (enrolment.status_reason or "").startswith("message of ")


@pytest.mark.parametrize("public_url", ["", "https://mail.acme.example"])
def test_a_postgresql_worker_without_a_public_url_warns_once_at_start(
        tmp_path: Path, pg_url: str, public_url: str) -> None:
    # Given a worker on PostgreSQL, with or without http.public_url
    env = {"DATABASE__URL": pg_url, "HTTP__PUBLIC_URL": public_url, "LOGGING__LEVEL": "INFO"}
    two_steps(tmp_path, "burst")
    make_app(tmp_path, **env)
    # When it starts (and stops: nothing is due)
    done = subprocess.run([sys.executable, "-m", "worker", "run", "--once"], cwd=tmp_path,
                          env={**os.environ, **env_for(tmp_path, **env)}, capture_output=True,
                          timeout=60, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    # Then without a public URL one line says why it matters; with one, nothing
    warnings = [line for line in done.stderr.splitlines() if "action=public_url_missing" in line]
    if public_url:
        assert warnings == []
    else:
        assert len(warnings) == 1 and "depend on which worker sent the mail" in warnings[0]


def test_sigterm_exits_within_the_grace_period_while_the_server_stalls(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker whose four connections each wait on a server that stalls 60 s per mail,
    # with a big batch behind them
    app, env = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="4", SMTP__TIMEOUT_S="120",
                         WORKER__GRACE_S="2", WORKER__RENDER_PROCESS="true")
    enrol_many(app, 400)
    smtp_server.stall(60.0, n=400, accept=False)
    proc = spawn(env, tmp_path)
    log = tmp_path / "worker.log"
    try:
        wait_until(lambda: log.read_bytes().count(b"action=worker_start") == 1, 30, "start")
        wait_until(lambda: smtp_server.connections >= 5, 30, "the channels connected")
        time.sleep(1.0)
        # When SIGTERM arrives
        sent_at = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        took = time.monotonic() - sent_at
    finally:
        if proc.poll() is None:
            proc.kill()
    # Then it exits 0 within grace_s plus a few seconds, with nothing accepted
    print(f"\nSIGTERM to exit with four stalled connections, grace_s=2: {took:.1f}s")
    assert code == 0 and took < 2 + 6, (took, log.read_text()[-2000:])
    assert smtp_server.messages == []
