"""The bounce guard in the send loop, against the scripted SMTP server refusing a share of
recipients with 550 5.1.1: the mailbox pauses once the rate passes smtp.max_bounce_rate over
at least 50 sends, its due mail waits (deferred, none dropped), the operator log and the
default owner are told the figures and the worst source, `mailbox list` shows the pause, and
`nurture mailbox resume` lets the rest go."""

from __future__ import annotations

import logging
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import select, update

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import REPO, enrol_many, workspace
from tests.workspace import run_once, settings_for
from worker.adapters.db import models as m
from worker.app import App


def enrolments(app: App) -> Counter[str]:
    with app.db.session() as s:
        return Counter(s.scalars(select(m.Enrollment.status)))


def test_a_bouncing_mailbox_pauses_its_mail_waits_and_resume_lets_it_go(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, caplog: pytest.LogCaptureFixture) -> None:
    app, env = workspace(tmp_path, smtp_server, SMTP__CONNECTIONS="1", SMTP__RETRIES="1",
                         WORKER__RENDER_PROCESS="false", SMTP__BOUNCE_WINDOW="200",
                         NOTIFY__DEFAULT_OWNER="owner@acme.example")
    enrol_many(app, 150)
    for n in range(0, 150, 10):  # one address in ten is dead: 10% > 5%
        smtp_server.reject(f"lead{n}@burst.test", "550 5.1.1 No such user")
    with caplog.at_level(logging.ERROR):
        run_once(app)
    # Then the mailbox paused after at least 50 sends, and the rest waits
    pauses = app.oauth_tokens.pauses()
    assert list(pauses) == ["default"]
    assert pauses["default"].startswith("bounce rate ") and "% over " in pauses["default"]
    sends = len(smtp_server.messages)
    assert 45 <= sends < 150 - 15
    counts = enrolments(app)
    assert counts["failed"] == 0 and counts["active"] + counts["waiting"] + counts[
        "bounced"] == 150
    alert = [r.getMessage() for r in caplog.records if "mailbox_paused" in r.getMessage()]
    assert alert and "worst source: test" in alert[0]
    with app.db.session() as s:
        notes = s.scalars(select(m.Notification).where(
            m.Notification.to_addr == "owner@acme.example")).all()
        assert len(notes) == 1 and "bounce rate" in notes[0].subject
    listed = subprocess.run([sys.executable, "-m", "worker", "mailbox", "list"], cwd=tmp_path,
                            env={**env, "PYTHONPATH": str(REPO)}, capture_output=True,
                            text=True, timeout=60)
    assert f"state       paused: {pauses['default']}" in listed.stdout

    # When someone resumes the mailbox, the waiting mail goes out
    resumed = subprocess.run([sys.executable, "-m", "worker", "mailbox", "resume", "default"],
                             cwd=tmp_path, env={**env, "PYTHONPATH": str(REPO)},
                             capture_output=True, text=True, timeout=60)
    assert resumed.returncode == 0 and "resumed default" in resumed.stdout
    for n in range(0, 150, 10):
        smtp_server.accept(f"lead{n}@burst.test")
    fresh = App(settings_for(tmp_path, **{k[len("NURTURE_"):]: v for k, v in env.items()
                                          if k.startswith("NURTURE_")}))
    with fresh.db.session() as s:
        s.execute(update(m.Enrollment).where(m.Enrollment.attempts > 0)  # the deferred ones
                  .values(next_due_at=fresh.clock.now()))
    run_once(fresh)
    counts = enrolments(fresh)
    rcpts = Counter(msg.rcpt_tos[0] for msg in smtp_server.messages)
    assert [r for r, c in rcpts.items() if c > 1] == [], counts
    leads_mail = [r for r in rcpts if r.endswith("@burst.test")]
    assert len(leads_mail) + counts["bounced"] == 150  # every lead's mail went
    assert rcpts["owner@acme.example"] == 1  # the alert, once the mailbox sends again
    assert counts["failed"] == 0
