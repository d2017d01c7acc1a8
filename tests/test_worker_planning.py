"""Planning due work: in the render process for big batches, and never twice for one step
(a claim held while the lead acts, a step planned again while its first copy is in flight)."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import enrol_many
from tests.test_worker import parsed
from tests.workspace import FakeClock, email_template, make_app, write_campaign
from worker.adapters.db import models as m
from worker.app import App
from worker.engine.runner import Runner

THREADED = """
name = "Threaded"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
[[step]]
id = "first"
wait = "0"
template = "first.md"
window = false
[[step]]
id = "again"
wait = "1d"
template = "again.md"
thread = true
window = false
"""


async def started_with_renderer(runner: Runner) -> asyncio.Task[int]:
    """``runner`` running, once its render process is ready (within 30 s)."""
    task = asyncio.create_task(runner.run())
    for _ in range(600):
        if runner.renderer_ready:
            break
        await asyncio.sleep(0.05)
    assert runner.renderer_ready
    return task


def accepted(app: App) -> int:
    with app.db.session() as s:
        return len(s.scalars(select(m.Touch.id).where(m.Touch.state == "accepted")).all())


def test_the_render_process_plans_and_renders_big_batches_from_the_lead_data(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker with its render process, and 24 leads due at once (a big batch)
    clock = FakeClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("{{ lead.first_name }}, your report"),
        "again.md": email_template("ignored for a threaded step")})
    app = make_app(tmp_path, clock, OUTBOUND__TRANSPORT="smtp", SMTP__HOST="127.0.0.1",
                   SMTP__PORT=str(smtp_server.port), WORKER__RENDER_PROCESS="true")
    runner = app.make_runner()

    async def scenario() -> None:
        task = await started_with_renderer(runner)
        for i in range(24):
            app.service.intake({"email": f"p{i}@acme.test", "first_name": f"Pat{i}"},
                               campaign="threaded")
        runner.wake()
        await asyncio.to_thread(smtp_server.wait_for, 24, 30)
        while accepted(app) < 24:  # the answers are recorded (a wait counts from then)
            await asyncio.sleep(0.02)
        # When a day passes, the threaded step is planned there from the prior touches
        clock.advance(days=1)
        runner.wake()
        await asyncio.to_thread(smtp_server.wait_for, 48, 30)
        runner.stop()
        assert await task == 0

    asyncio.run(scenario())
    # Then each lead got its own name, and the second mail answers the first one
    mails = [parsed(m.data) for m in smtp_server.messages]
    first = {m["To"].addresses[0].username: m for m in mails if m["In-Reply-To"] is None}
    again = {m["To"].addresses[0].username: m for m in mails if m["In-Reply-To"] is not None}
    assert len(first) == len(again) == 24
    for to, mail in first.items():
        n = to[1:]  # p7 -> 7
        assert mail["Subject"] == f"Pat{n}, your report"
        assert again[to]["In-Reply-To"] == mail["Message-ID"]
        assert again[to]["Subject"] == f"Re: Pat{n}, your report"
    # And the render process did plan them (the worker only claimed and recorded)
    assert runner.stats["planned"] == 48 and runner.stats["render_process_batches"] >= 2


def test_a_contact_request_keeps_the_workers_claim(tmp_path: Path) -> None:
    # Given a lead whose first step a worker has claimed (and is about to send)
    write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("Hi"), "again.md": email_template("Again")})
    app = make_app(tmp_path)
    app.service.intake({"email": "hot@acme.test"}, campaign="threaded")
    [row] = app.db.claim_rows("w1", app.clock.now(), 10, 30)
    # When the lead asks to be contacted
    app.service.record_event("hot@acme.test", "contact_request", {})
    # Then it moves to the front of the queue, and the claim stays (no second plan possible)
    with app.db.session() as s:
        enrolment = s.get(m.Enrollment, row.id)
        assert enrolment is not None
        assert (enrolment.priority, enrolment.claimed_by) == (1, "w1")
    assert app.db.claim_rows("w2", app.clock.now(), 10, 30) == []


def test_a_step_planned_again_while_in_flight_is_sent_once(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a lead's first mail with the server (which takes 1.5 s to answer)
    write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("Hi"), "again.md": email_template("Again")})
    app = make_app(tmp_path, OUTBOUND__TRANSPORT="smtp", SMTP__HOST="127.0.0.1",
                   SMTP__PORT=str(smtp_server.port), SMTP__TIMEOUT_S="5")
    smtp_server.stall(1.5, accept=True)
    app.service.intake({"email": "lee@acme.test"}, campaign="threaded")
    runner = app.make_runner()

    async def scenario() -> None:
        task = asyncio.create_task(runner.run())
        deadline = time.monotonic() + 10
        while handed_over(app) == 0:
            assert time.monotonic() < deadline, "the mail never reached the server"
            await asyncio.sleep(0.02)
        # When its claim is dropped meanwhile (a change by hand) and the worker looks again
        [enrolment] = app.db.enrollments_of(app.db.lead_by_email("lee@acme.test").id)
        app.db.set_enrollment(enrolment.id, status="active", reason="by hand",
                              next_due_at=app.clock.now())
        runner.wake()
        await asyncio.to_thread(smtp_server.wait_for, 1, 10)
        await asyncio.sleep(0.5)
        runner.stop()
        assert await task == 0

    asyncio.run(scenario())
    # Then the step was planned a second time, but only one copy went out
    assert runner.stats["replanned_in_flight"] == 1
    assert list(smtp_server.message_ids().values()) == [1]


def handed_over(app: App) -> int:
    with app.db.session() as s:
        return len(s.scalars(select(m.Touch.id).where(m.Touch.state == "handed_over")).all())


def test_an_edited_campaign_reaches_the_planner_through_its_catalog_getter(
        tmp_path: Path) -> None:
    # Given a worker's planner built over the campaigns as they were at start
    folder = write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("Old subject"), "again.md": email_template("Again")})
    app = make_app(tmp_path)
    before = app.planner.catalog
    app.service.intake({"email": "edit@acme.test"}, campaign="threaded")
    # When the campaign is edited on disk and the worker reloads it
    (folder / "first.md").write_text(email_template("A brand new subject line"))
    later = (folder / "first.md").stat().st_mtime + 5  # the signature reads mtimes
    os.utime(folder / "first.md", (later, later))
    assert app.reload_catalog_if_changed()
    # Then the planner reads the new campaigns (nobody patched it: it asks the holder)
    assert app.planner.catalog is app.current_catalog() is not before
    [job] = app.planner.prepare(app.db.claim_due("w1", app.clock.now(), 10, 30), app.clock.now())
    assert parsed(job.envelope.data)["Subject"] == "A brand new subject line"


def test_the_render_process_reloads_its_catalog_when_the_workers_changed(
        tmp_path: Path) -> None:
    # Given a render process (its planner built by the root's factory over its own catalog)
    folder = write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("Old subject"), "again.md": email_template("Again")})
    app = make_app(tmp_path, WORKER__RENDER_PROCESS="true")
    process = app.render_process()
    assert process is not None
    try:
        app.service.intake({"email": "one@acme.test"}, campaign="threaded")
        rows = app.db.claim_rows("w1", app.clock.now(), 10, 30)
        first = process.plan(rows, app.clock.now(), app.catalog.digest).result(timeout=120)
        assert parsed(first.jobs[0].envelope.data)["Subject"] == "Old subject"
        # When the worker's campaigns change (a new digest)
        (folder / "first.md").write_text(email_template("A brand new subject line"))
        later = (folder / "first.md").stat().st_mtime + 5
        os.utime(folder / "first.md", (later, later))
        assert app.reload_catalog_if_changed()
        app.service.intake({"email": "two@acme.test"}, campaign="threaded")
        rows = app.db.claim_rows("w1", app.clock.now(), 10, 30)
        # Then the render process plans with the new campaigns
        second = process.plan(rows, app.clock.now(), app.catalog.digest).result(timeout=120)
        assert [parsed(j.envelope.data)["Subject"] for j in second.jobs] == [
            "A brand new subject line"]
    finally:
        process.close()


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def test_a_backlog_is_planned_in_two_lanes_and_each_step_is_sent_once(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, request: pytest.FixtureRequest,
        database: str) -> None:
    # Given a worker with its render process, batches of 20, and 240 leads due at once
    clock = FakeClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    write_campaign(tmp_path / "campaigns", "threaded", THREADED, {
        "first.md": email_template("Your report"),
        "again.md": email_template("ignored for a threaded step")})
    app = make_app(tmp_path, clock, OUTBOUND__TRANSPORT="smtp", SMTP__HOST="127.0.0.1",
                   SMTP__PORT=str(smtp_server.port), WORKER__RENDER_PROCESS="true",
                   WORKER__BATCH_SIZE="20", SMTP__CONNECTIONS="4",
                   **({"DATABASE__URL": request.getfixturevalue("pg_url")}
                      if database == "postgres" else {}))
    runner = app.make_runner()

    async def scenario() -> None:
        task = await started_with_renderer(runner)
        await asyncio.to_thread(enrol_many, app, 240, "threaded")
        runner.wake()
        await asyncio.to_thread(smtp_server.wait_for, 240, 60)
        while accepted(app) < 240:
            await asyncio.sleep(0.02)
        runner.stop()
        assert await task == 0

    asyncio.run(scenario())
    # Then the second lane planned some of the batches while the first one's rendered
    assert runner.stats["second_lane_batches"] >= 1, runner.stats
    # ... and every lead got its first step exactly once, each recorded as accepted
    recipients = [parsed(m.data)["To"].addresses[0].username for m in smtp_server.messages]
    assert sorted(recipients) == sorted(f"lead{i}" for i in range(240))
    assert runner.stats["planned"] == runner.stats["accepted"] == 240

