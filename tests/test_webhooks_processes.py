"""Webhooks and worker processes (`nurture run` subprocesses): the receiver down while events
pile up and the worker SIGKILLed, then both back: nothing lost; two workers on PostgreSQL:
each event delivered once, each lead's events in order."""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.webhook_receiver import WebhookReceiver
from tests.test_processes import enrol_many, spawn, states, wait_until, workspace
from tests.webhookkit import SECRET
from worker.adapters.db import models as m
from worker.app import App

W = m.WebhookOutbox
LEADS = 100


def outbox(app: App) -> dict[str, Counter[str]]:
    """Webhook ids by status, and how many rows have failed at least once."""
    with app.db.session() as s:
        rows = s.execute(select(W.webhook_id, W.status, W.attempts)).all()
    return {"ids": Counter(r.webhook_id for r in rows),
            "status": Counter(r.status for r in rows),
            "tried": Counter("tried" for r in rows if r.attempts > 0)}


def hooked(tmp: Path, smtp: ScriptedSmtpServer, receiver: WebhookReceiver,
           **env: str) -> tuple[App, dict[str, str]]:
    return workspace(tmp, smtp, WEBHOOKS__CRM__URL=receiver.url, WEBHOOKS__CRM__SECRET=SECRET,
                     WEBHOOKS__CRM__TIMEOUT_S="2", WORKER__RENDER_PROCESS="false", **env)


def test_receiver_down_and_worker_killed_loses_no_event(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    receiver = WebhookReceiver(SECRET)  # not listening: connections refused
    app, env = hooked(tmp_path, smtp_server, receiver)
    enrol_many(app, LEADS)  # LEADS x lead.created, written with the leads
    proc = spawn(env, tmp_path)
    try:
        # When the mails go out (LEADS x mail.sent) while the receiver is down: each lead's
        # first event fails (its later ones wait behind it), and the worker is killed
        wait_until(lambda: states(app)["accepted"] == LEADS, 60, "mails sent")
        wait_until(lambda: outbox(app)["tried"]["tried"] == LEADS, 30, "all tried")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    assert outbox(app)["status"] == Counter({"pending": 2 * LEADS})
    # And both come back a minute later (time moved for the outbox rows: the retry schedule
    # and the claim lease are the delivery tests' business, waiting them out here is not)
    minute = timedelta(minutes=1)
    with app.db.session() as s:
        for row in s.scalars(select(W)):
            row.next_attempt_at -= minute
            row.claimed_until = row.claimed_until and row.claimed_until - minute
    receiver.up()
    proc = spawn(env, tmp_path, name="again")
    try:
        wait_until(lambda: outbox(app)["status"]["delivered"] == 2 * LEADS, 60, "delivered")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        receiver.down()
    # Then every event arrived verified, under the id it was written with
    got = Counter(r.webhook_id for r in receiver.delivered())
    assert set(got) == set(outbox(app)["ids"])
    assert all(r.verified for r in receiver.received)
    assert Counter(r.json()["type"] for r in receiver.delivered()
                   if got[r.webhook_id]) >= Counter({"lead.created": LEADS, "mail.sent": LEADS})


@pytest.mark.postgres
def test_two_workers_on_postgresql_deliver_each_event_once_in_lead_order(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, pg_url: str) -> None:
    receiver = WebhookReceiver(SECRET).up()
    app, env = hooked(tmp_path, smtp_server, receiver, DATABASE__URL=pg_url,
                      SMTP__CONNECTIONS="2", WORKER__BATCH_SIZE="25")
    enrol_many(app, 2 * LEADS)
    procs = [spawn(env, tmp_path, name=f"w{i}") for i in range(2)]
    try:
        wait_until(lambda: states(app)["accepted"] == 2 * LEADS, 90, "mails sent")
        wait_until(lambda: outbox(app)["status"]["delivered"] == 4 * LEADS, 60, "delivered")
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        codes = [proc.wait(60) for proc in procs]
        receiver.down()
    assert codes == [0, 0]
    # Each event was delivered by one worker, once
    ids = Counter(r.webhook_id for r in receiver.received)
    assert len(ids) == 4 * LEADS and max(ids.values()) == 1
    with app.db.session() as s:
        by = dict(s.execute(select(W.claimed_by, func.count()).group_by(W.claimed_by)).all())
    assert by == {None: 4 * LEADS}  # every claim was released on delivery
    # And each lead's events came in the order they happened (created before sent)
    per_lead: dict[int, list[str]] = defaultdict(list)
    for r in receiver.received:
        body = r.json()
        per_lead[body["data"]["lead"]["id"]].append(body["type"])
    assert all(v == ["lead.created", "mail.sent"] for v in per_lead.values())
    assert len(per_lead) == 2 * LEADS
