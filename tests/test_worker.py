"""The worker against a real SMTP server (aiosmtpd): schedule, headers, lifecycle, answers."""

from __future__ import annotations

import asyncio
import email
import email.policy
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import FakeClock, email_template, make_app, run_once, write_campaign
from worker.adapters.db import models as m
from worker.app import App

SEQ = """
name = "Seq"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
reply_to = "dana@acme.example"
on_finish = "news"

[window]
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
default_timezone = "America/New_York"
holidays = "US"

[[step]]
id = "first"
wait = "0"
template = "01.md"
window = false
attachments = ["report.pdf"]

[[step]]
id = "call"
wait = "1d"
task = "Call to follow up on the report"

[[step]]
id = "second"
wait = "1d"
template = "02.md"
thread = true

[[step]]
id = "us-only"
wait = "1d"
template = "03.md"
when = "lead.country == 'US'"
"""

NEWS = """
name = "News"
kind = "newsletter"
sender = "Acme <news@acme.example>"
[window]
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "10:00-16:00"
default_timezone = "America/New_York"
"""


def setup_campaigns(tmp: Path) -> None:
    write_campaign(tmp / "campaigns", "seq", SEQ, {
        "01.md": email_template("{{ lead.first_name | default('Hi') }}, your report"),
        "02.md": email_template("Second"), "03.md": email_template("US only"),
        "report.pdf": b"%PDF-1.4 tiny report",
    })
    write_campaign(tmp / "campaigns", "news", NEWS, {
        "issues/2026-03-10-launch.md": "---\nsubject: Launch\nsend_on: 2026-03-10\n---\nNews!\n",
    })


def smtp_app(tmp: Path, server: ScriptedSmtpServer, clock: FakeClock | None = None,
             **env: str) -> App:
    setup_campaigns(tmp)
    options = {"OUTBOUND__TRANSPORT": "smtp", "SMTP__HOST": "127.0.0.1",
               "SMTP__PORT": str(server.port), "SMTP__CONNECTIONS": "2", "SMTP__TIMEOUT_S": "2",
               "SMTP__RETRIES": "2", **env}
    return make_app(tmp, clock, **options)


def touches(app: App, email_addr: str) -> list[m.Touch]:
    with app.db.session() as s:
        return list(s.scalars(select(m.Touch).join(m.Lead, m.Lead.id == m.Touch.lead_id)
                              .where(m.Lead.email == email_addr).order_by(m.Touch.id)))


def enrollment(app: App, email_addr: str, campaign: str = "seq") -> m.Enrollment:
    lead = app.db.lead_by_email(email_addr)
    assert lead is not None
    [row] = app.db.enrollments_of(lead.id, campaign)
    return row


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_a_sequence_runs_to_its_end_and_joins_the_newsletter(tmp_path: Path,
                                                            smtp_server: ScriptedSmtpServer) -> None:
    # Given two leads enrolled on Monday 2 March 2026, 09:00 in New York
    clock = FakeClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    app = smtp_app(tmp_path, smtp_server, clock)
    app.service.intake({"email": "ann@acme.test", "first_name": "Ann", "country": "US",
                        "owner": "rep@acme.example"}, campaign="seq")
    app.service.intake({"email": "zed@acme.test", "country": "DE", "timezone": "Europe/Berlin"},
                       campaign="seq")
    # When the worker runs: the first step goes out at once, with its attachment
    run_once(app)
    first = {m.rcpt_tos[0]: parsed(m.data) for m in smtp_server.messages}
    assert set(first) == {"ann@acme.test", "zed@acme.test"}
    ann1 = first["ann@acme.test"]
    assert ann1["Subject"] == "Ann, your report" and ann1["List-Unsubscribe"]
    assert [a.get_filename() for a in ann1.iter_attachments()] == ["report.pdf"]
    assert ann1["Message-ID"].startswith(f"<nurture.{enrollment(app, 'ann@acme.test').id}.first.")
    # And nothing else is due the same day
    run_once(app)
    assert len(smtp_server.messages) == 2
    # When a day passes, the call task is created for the owner (no mail)
    clock.advance(days=1)
    run_once(app)
    assert len(smtp_server.messages) == 2
    task = [t for t in touches(app, "ann@acme.test") if t.kind == "task"][0]
    assert (task.state, task.owner, task.task_kind) == ("open", "rep@acme.example", "call")
    # When another day passes, the threaded second mail replies to the first
    clock.advance(days=1)
    run_once(app)
    seconds = {m.rcpt_tos[0]: parsed(m.data) for m in smtp_server.messages[2:]}
    assert seconds["ann@acme.test"]["In-Reply-To"] == ann1["Message-ID"]
    assert seconds["ann@acme.test"]["Subject"] == "Re: Ann, your report"
    # When the last step comes, the US lead gets it, the German one skips it; both complete
    clock.advance(days=1)
    run_once(app)
    last = [m.rcpt_tos[0] for m in smtp_server.messages[4:]]
    assert last == ["ann@acme.test"]
    assert enrollment(app, "ann@acme.test").status == "completed"
    assert enrollment(app, "zed@acme.test").status == "completed"
    assert [t.state for t in touches(app, "zed@acme.test") if t.step_id == "us-only"] == ["skipped"]
    # Then both joined the newsletter, whose issue goes out on its date within its window, once
    assert enrollment(app, "ann@acme.test", "news").status == "active"
    clock.set(datetime(2026, 3, 10, 14, 30, tzinfo=UTC))  # 10:30 New York, 15:30 Berlin
    run_once(app)
    run_once(app)
    issue = [m for m in smtp_server.messages if parsed(m.data)["Subject"] == "Launch"]
    assert sorted(m.rcpt_tos[0] for m in issue) == ["ann@acme.test", "zed@acme.test"]
    assert smtp_server.message_ids().most_common(1)[0][1] == 1


def test_the_window_and_holidays_hold_a_due_step(tmp_path: Path,
                                                 smtp_server: ScriptedSmtpServer) -> None:
    # Given a lead whose second step falls on a Saturday
    clock = FakeClock(datetime(2026, 5, 21, 14, 0, tzinfo=UTC))  # Thursday 10:00 New York
    app = smtp_app(tmp_path, smtp_server, clock)
    app.service.intake({"email": "ann@acme.test", "country": "US"}, campaign="seq")
    run_once(app)
    clock.advance(days=1)
    run_once(app)  # the task on Friday
    # When the worker runs on Saturday and Sunday, nothing goes out
    clock.advance(days=1)
    run_once(app)
    clock.advance(days=1)
    run_once(app)
    assert len(smtp_server.messages) == 1
    # And Monday 25 May is Memorial Day: still nothing
    clock.set(datetime(2026, 5, 25, 15, 0, tzinfo=UTC))
    run_once(app)
    assert len(smtp_server.messages) == 1
    assert enrollment(app, "ann@acme.test").next_due_at == datetime(2026, 5, 26, 13, 0,
                                                                     tzinfo=UTC)
    # Then on Tuesday at the window's opening it is sent
    clock.set(datetime(2026, 5, 26, 13, 0, tzinfo=UTC))
    run_once(app)
    assert len(smtp_server.messages) == 2


def test_suppressed_leads_receive_nothing(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    app = smtp_app(tmp_path, smtp_server)
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    app.db.add_suppression("ann@acme.test", "unsubscribed", "test")
    run_once(app)
    assert smtp_server.messages == []
    assert enrollment(app, "ann@acme.test").status == "unsubscribed"


def test_transient_answers_are_retried_and_then_deferred_never_dropped(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    clock = FakeClock()
    app = smtp_app(tmp_path, smtp_server, clock)
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    # Given one 451 then success: the adapter's quick retry delivers it
    smtp_server.fail_next(1, "451 4.3.0 Temporary local problem")
    run_once(app)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == ["ann@acme.test"]
    # Given a server that keeps answering 452 for a second lead
    app.service.intake({"email": "bob@acme.test"}, campaign="seq")
    smtp_server.fail_next(10, "452 4.2.2 Mailbox over quota, try later")
    run_once(app)
    # Then the mail is deferred with the server's words, the step stays planned
    row = enrollment(app, "bob@acme.test")
    assert row.status == "active" and row.attempts == 1 and "452" in (row.status_reason or "")
    assert row.next_due_at is not None and row.next_due_at > clock.now()
    [touch] = touches(app, "bob@acme.test")
    assert touch.state in ("planned", "handed_over") and touch.smtp_code == 452
    # When the server recovers and the retry time comes, it goes out with the same Message-ID
    smtp_server.clear_scripts()
    clock.set(row.next_due_at)
    run_once(app)
    bob = [m for m in smtp_server.messages if m.rcpt_tos[0] == "bob@acme.test"]
    assert len(bob) == 1 and bob[0].message_id == f"<{touch.message_id}>"


def test_permanent_answers_are_recorded_with_the_servers_words(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    app = smtp_app(tmp_path, smtp_server)
    smtp_server.reject("gone@acme.test", "550 5.1.1 <gone@acme.test>: Recipient address rejected")
    smtp_server.reject("full@acme.test", "552 5.3.4 Message size exceeds fixed limit")
    for addr in ("gone@acme.test", "full@acme.test"):
        app.service.intake({"email": addr}, campaign="seq")
    run_once(app)
    gone, full = enrollment(app, "gone@acme.test"), enrollment(app, "full@acme.test")
    assert gone.status == "bounced" and "Recipient address rejected" in (gone.status_reason or "")
    assert full.status == "failed" and "552" in (full.status_reason or "")
    assert touches(app, "gone@acme.test")[0].state == "bounced"
    assert touches(app, "full@acme.test")[0].smtp_response == "5.3.4 Message size exceeds fixed limit"
    assert app.db.suppression_for("gone@acme.test") == "bounced"
    assert app.db.suppression_for("full@acme.test") is None


def test_throttling_slows_the_mailbox_and_defers(tmp_path: Path,
                                                 smtp_server: ScriptedSmtpServer) -> None:
    app = smtp_app(tmp_path, smtp_server)
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    smtp_server.fail_next(1, "421 4.7.0 Too many messages, slow down")
    runner = app.make_runner(once=True)
    asyncio.run(runner.run())
    assert runner.stats["deferred"] == 1 and "default" in runner.throttled_until
    assert smtp_server.messages == []
    assert enrollment(app, "ann@acme.test").attempts == 1


def test_a_stalled_or_dropped_connection_is_retried(tmp_path: Path,
                                                    smtp_server: ScriptedSmtpServer) -> None:
    app = smtp_app(tmp_path, smtp_server, SMTP__RETRIES="3")
    smtp_server.drop_mid_data(1)
    smtp_server.stall(5, accept=False)  # past the 2 s timeout
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    run_once(app)
    assert [m.rcpt_tos[0] for m in smtp_server.messages] == ["ann@acme.test"]
    assert touches(app, "ann@acme.test")[0].state == "accepted"


def test_hourly_cap_defers_the_rest(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    clock = FakeClock()
    app = smtp_app(tmp_path, smtp_server, clock, SMTP__HOURLY_CAP="3")
    for i in range(5):
        app.service.intake({"email": f"l{i}@acme.test"}, campaign="seq")
    run_once(app)
    assert len(smtp_server.messages) == 3
    deferred = [enrollment(app, f"l{i}@acme.test") for i in range(5)]
    assert sum("at its cap" in (e.status_reason or "") for e in deferred) == 2
    clock.advance(hours=1, minutes=1)
    run_once(app)
    assert len(smtp_server.messages) == 5


def test_late_steps_follow_the_late_policy(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a worker that was down for three days, with late_policy = "skip"
    clock = FakeClock()
    app = smtp_app(tmp_path, smtp_server, clock, WORKER__LATE_POLICY="skip")
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    clock.advance(days=3)
    run_once(app)
    # Then the late first step is recorded as skipped with the reason, and nothing fires
    assert smtp_server.messages == []
    [first] = touches(app, "ann@acme.test")[:1]
    assert first.state == "skipped" and "late by" in (first.note or "")


def test_pause_resume_cancel_by_hand(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    clock = FakeClock()
    app = smtp_app(tmp_path, smtp_server, clock)
    app.service.intake({"email": "ann@acme.test"}, campaign="seq")
    assert app.by_hand.pause("ann@acme.test", None) == ["seq"]
    run_once(app)
    assert smtp_server.messages == []
    assert app.by_hand.resume("ann@acme.test", "seq") == ["seq"]
    run_once(app)
    assert len(smtp_server.messages) == 1
    app.by_hand.cancel("ann@acme.test", None)
    clock.advance(days=10)
    run_once(app)
    assert len(smtp_server.messages) == 1 and enrollment(app, "ann@acme.test").status == "cancelled"


def test_short_waits_with_the_real_clock(tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given a campaign whose second step waits 2 seconds, and a worker that keeps running
    write_campaign(tmp_path / "campaigns", "quick", """
        name = "Quick"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        [[step]]
        id = "a"
        wait = "0"
        template = "a.md"
        [[step]]
        id = "b"
        wait = "2s"
        template = "a.md"
        """, {"a.md": email_template("Quick")})
    app = smtp_app(tmp_path, smtp_server)

    async def scenario() -> None:
        runner = app.make_runner()
        task = asyncio.create_task(runner.run())
        await asyncio.sleep(0.3)
        app.service.intake({"email": "ann@acme.test"}, campaign="quick")  # wakes the runner
        await asyncio.to_thread(smtp_server.wait_for, 2, 15)
        runner.stop()
        assert await asyncio.wait_for(task, 15) == 0

    asyncio.run(scenario())
    first, second = smtp_server.messages[:2]
    gap = second.accepted_at - first.accepted_at
    assert timedelta(seconds=2) <= gap < timedelta(seconds=10)
    assert enrollment(app, "ann@acme.test", "quick").status == "completed"


def test_a_waiting_enrolment_that_sends_records_its_return_to_active(
        tmp_path: Path, smtp_server: ScriptedSmtpServer) -> None:
    # Given two leads: one active, one waiting (an out-of-office) whose step is due again
    clock = FakeClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    app = smtp_app(tmp_path, smtp_server, clock)
    for addr in ("act@acme.test", "ooo@acme.test"):
        app.service.intake({"email": addr}, campaign="seq")
    with app.db.session() as s:
        row = s.get(m.Enrollment, enrollment(app, "ooo@acme.test").id)
        assert row is not None
        row.status, row.status_reason = "waiting", "out of office"
    # When the worker sends both first steps
    run_once(app)
    assert len(smtp_server.messages) == 2
    # Then the waiting one is active again, with the change recorded; the active one has no
    # status change for the send
    with app.db.session() as s:
        changes = s.execute(select(m.StatusChange.enrollment_id, m.StatusChange.old,
                                   m.StatusChange.new, m.StatusChange.reason)
                            .where(m.StatusChange.reason == "step sent")).all()
    ooo, act = enrollment(app, "ooo@acme.test"), enrollment(app, "act@acme.test")
    assert ooo.status == act.status == "active"
    assert [tuple(c) for c in changes] == [(ooo.id, "waiting", "active", "step sent")]
