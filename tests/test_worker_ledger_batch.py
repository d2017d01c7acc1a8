"""The ledger records the answers of a group commit by kind of statement, not mail by mail
(issue 13): on a one-step campaign every mail finishes its enrolment, and those answers took
about six statements each, on the event loop (SQLite) or as round trips (PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, update

from tests.servers.smtp import ScriptedSmtpServer
from tests.test_processes import enrol_many
from tests.workspace import email_template, make_app, write_campaign
from worker.adapters.db import Database
from worker.adapters.db import models as m
from worker.domain.send_rows import Outcome

ONE_STEP = """
name = "Burst"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
[[step]]
id = "only"
wait = "0"
template = "only.md"
"""


class CountingStore:
    """The real store; each ``record`` call notes its finishing answers, the statements that
    went through SQLAlchemy and the commits it made (in its own thread: on PostgreSQL other
    threads write meanwhile)."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.calls: list[tuple[int, int, int]] = []
        self.statements = self.commits = 0
        self.thread = -1
        event.listen(db.engine, "before_cursor_execute", self._statement)
        event.listen(db.engine, "commit", self._commit)

    def _statement(self, *args: Any) -> None:
        self.statements += threading.get_ident() == self.thread

    def _commit(self, *args: Any) -> None:
        self.commits += threading.get_ident() == self.thread

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)

    def record(self, worker_id: str, outcomes: list[Outcome], hand_over: list[str]) -> set[str]:
        statements, commits = self.statements, self.commits
        self.thread = threading.get_ident()
        allowed = self.db.record(worker_id, outcomes, hand_over)
        finishing = sum(1 for o in outcomes if o.change and o.change.status == "completed")
        self.calls.append((finishing, self.statements - statements, self.commits - commits))
        return allowed


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def test_a_group_of_finishing_mails_is_recorded_in_one_commit_of_a_few_statements(
        tmp_path: Path, smtp_server: ScriptedSmtpServer, request: pytest.FixtureRequest,
        database: str) -> None:
    # Given 60 enrolments of a one-step campaign (each mail finishes its enrolment), 8 channels
    write_campaign(tmp_path / "campaigns", "burst", ONE_STEP,
                   {"only.md": email_template("Hello")})
    app = make_app(tmp_path, OUTBOUND__TRANSPORT="smtp", SMTP__HOST="127.0.0.1",
                   SMTP__PORT=str(smtp_server.port), SMTP__CONNECTIONS="8",
                   SMTP__TIMEOUT_S="5", WORKER__RENDER_PROCESS="false",
                   **({"DATABASE__URL": request.getfixturevalue("pg_url")}
                      if database == "postgres" else {}))
    enrol_many(app, 60)
    store = CountingStore(app.db)
    # When the worker sends them all
    assert asyncio.run(asyncio.wait_for(app.make_runner(once=True, records=store).run(),
                                        timeout=120)) == 0
    # Then every answer is recorded: 60 accepted, 60 enrolments completed and audited
    with app.db.session() as s:
        states = dict(s.execute(select(m.Touch.state, func.count()).group_by(m.Touch.state)).all())
        done = s.scalar(select(func.count()).where(m.Enrollment.status == "completed",
                                                   m.Enrollment.claimed_by.is_(None)))
        audited = s.scalar(select(func.count()).where(m.StatusChange.new == "completed"))
    assert states == {"accepted": 60} and done == 60 and audited == 60
    assert len(smtp_server.messages) == 60
    # ... each group commit in one commit, with a number of statements that does not grow
    # with its number of finishing mails (one by one it was six per mail)
    assert sum(f for f, _, _ in store.calls) == 60
    assert all(commits == 1 for _, _, commits in store.calls), store.calls
    grouped = [(f, n) for f, n, _ in store.calls if f >= 3]
    assert grouped, store.calls  # the channels' answers did share commits
    assert all(n <= 6 for _, n in grouped), grouped


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres",
                                                              marks=pytest.mark.postgres)])
def test_a_finishing_mail_completes_only_an_enrolment_the_worker_still_holds(
        tmp_path: Path, request: pytest.FixtureRequest, database: str) -> None:
    # Given two enrolments of a one-step campaign, both mails handed over by worker W, and
    # a webhook endpoint; then a reply stops the second one (its claim is dropped)
    write_campaign(tmp_path / "campaigns", "burst", ONE_STEP,
                   {"only.md": email_template("Hello")})
    app = make_app(tmp_path, WEBHOOKS__CRM__URL="http://127.0.0.1:9/hook",
                   WEBHOOKS__CRM__SECRET="whsec_" + "A" * 32,
                   **({"DATABASE__URL": request.getfixturevalue("pg_url")}
                      if database == "postgres" else {}))
    enrol_many(app, 2)
    now = app.clock.now()
    jobs = app.planner.prepare(app.db.claim_due("W", now, 10, 30), now)
    assert len(jobs) == 2
    assert app.db.record("W", [], [j.envelope.message_id for j in jobs]) == {
        j.envelope.message_id for j in jobs}
    kept, stopped = sorted(jobs, key=lambda j: j.enrollment_id)
    E = m.Enrollment
    with app.db.session() as s:
        s.execute(update(E).where(E.id == stopped.enrollment_id).values(
            status="replied", claimed_by=None, claimed_until=None))
    # When the server's 250 for both is recorded
    app.db.record("W", [Outcome(j.envelope.message_id, j.enrollment_id, j.lead_id, "accepted",
                                250, "2.0.0 OK", j.success) for j in jobs], [])
    # Then both mails count as sent, and both steps are done
    with app.db.session() as s:
        touches = dict(s.execute(select(m.Touch.enrollment_id, m.Touch.state)).all())
        rows = {r.id: (r.status, r.next_step, r.claimed_by) for r in s.scalars(select(E))}
        completed = list(s.scalars(select(m.StatusChange.enrollment_id).where(
            m.StatusChange.new == "completed")))
        events = list(s.execute(select(m.WebhookOutbox.type, m.WebhookOutbox.lead_id).where(
            m.WebhookOutbox.type.in_(["enrollment.completed", "mail.sent"]))))
    assert touches == {kept.enrollment_id: "accepted", stopped.enrollment_id: "accepted"}
    # ... the held one is completed, audited and reported; the replied one stays replied
    assert rows[kept.enrollment_id] == ("completed", 1, None)
    assert rows[stopped.enrollment_id] == ("replied", 1, None)
    assert completed == [kept.enrollment_id]
    assert sorted(events) == sorted([("enrollment.completed", kept.lead_id),
                                     ("mail.sent", kept.lead_id),
                                     ("mail.sent", stopped.lead_id)])
