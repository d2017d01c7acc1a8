"""The ledger on PostgreSQL commits on the event loop, a group in one statement (issue 13,
``adapters/db/async_ledger.py``): it must write exactly what the sending store writes, fall
back to it for the other answers, and survive a lost connection."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import select

from tests.servers.postgres import PostgresCluster
from tests.workspace import FakeClock, email_template, make_app, write_campaign
from worker.adapters.db import models as m
from worker.adapters.db.async_ledger import LoopRecords, conninfo
from worker.app import App
from worker.domain.leads import parse_lead
from worker.domain.send_rows import Outcome
from worker.engine.planning import Job
from worker.errors import StoreError

pytestmark = pytest.mark.postgres

TWO = """
name = "Two"
kind = "sequence"
sender = "Dana <dana@acme.example>"
[[step]]
id = "first"
wait = "0"
window = false
template = "t.md"
[[step]]
id = "second"
wait = "3 d"
window = false
template = "t.md"
"""
ONE = """
name = "One"
kind = "sequence"
sender = "Dana <dana@acme.example>"
[[step]]
id = "only"
wait = "0"
window = false
template = "t.md"
"""

Recorder = Callable[[str, Sequence[Outcome], Sequence[str]], set[str]]


def workspace(tmp: Path, url: str) -> App:
    for slug, toml in (("two", TWO), ("one", ONE)):
        write_campaign(tmp / "campaigns", slug, toml, {"t.md": email_template("Hi")})
    return make_app(tmp, clock=FakeClock(), DATABASE__URL=url)


def enrol(app: App, campaign: str, names: Sequence[str], status: str = "active") -> None:
    results = app.db.upsert_leads([(parse_lead({"email": f"{n}@example.com"}), campaign)
                                   for n in names])
    now = app.clock.now()
    with app.db.session() as s:
        s.execute(m.Enrollment.__table__.insert(), [
            {"lead_id": r.lead_id, "campaign": campaign, "status": status, "next_step": 0,
             "next_due_at": now, "enrolled_at": now, "priority": 0, "attempts": 0,
             "updated_at": now} for r in results])


def set_enrolment(app: App, job: Job, **values: Any) -> None:
    with app.db.session() as s:
        s.execute(m.Enrollment.__table__.update().where(m.Enrollment.id == job.enrollment_id)
                  .values(**values))


def accepted(job: Job) -> Outcome:
    return Outcome(job.envelope.message_id, job.enrollment_id, job.lead_id, "accepted", 250,
                   f"2.0.0 OK queued as {job.enrollment_id}", job.success)


def scenario(app: App, record: Recorder) -> tuple[list[set[str]], dict[str, Any]]:
    """Every case of a group commit, through ``record``; returns whose mails each call
    allowed, and the rows it left (Message-IDs differ from one workspace to another)."""
    enrol(app, "two", ["moves", "replied", "taken", "later", "withdrawn", "stays", "answered"])
    enrol(app, "two", ["waited"], status="waiting")
    enrol(app, "one", ["finishes", "stopped", "refused"])
    clock = app.clock
    now = clock.now()  # type: ignore[attr-defined]
    jobs = {j.envelope.rcpt_to.split("@")[0]: j
            for j in app.planner.prepare(app.db.claim_due("W", now, 50, 300), now)}
    assert len(jobs) == 11
    later_ones = ("withdrawn", "stays", "answered")
    first = [n for n in jobs if n not in later_ones]
    allowed = [record("W", [], [jobs[n].envelope.message_id for n in first])]
    # While the mails are out: a reply stops two, another worker takes two over (their lease
    # ran out), one with a later date; of those not yet handed over one is paused by hand
    # and one has its answer recorded by another worker
    later = now.replace(year=now.year + 1)
    set_enrolment(app, jobs["replied"], status="replied", claimed_by=None, claimed_until=None)
    set_enrolment(app, jobs["stopped"], status="replied", claimed_by=None, claimed_until=None)
    set_enrolment(app, jobs["taken"], claimed_by="OTHER")
    set_enrolment(app, jobs["later"], claimed_by="OTHER", next_due_at=later)
    set_enrolment(app, jobs["withdrawn"], status="paused")  # paused by hand: still claimed
    with app.db.session() as s:  # another worker recorded this one's answer (a lease race)
        s.execute(m.Touch.__table__.update().where(
            m.Touch.message_id == jobs["answered"].envelope.message_id).values(state="accepted"))
    clock.advance(minutes=2)  # type: ignore[attr-defined]
    answers = [accepted(jobs[n]) for n in first if n != "refused"]
    allowed.append(record("W", answers, [jobs[n].envelope.message_id for n in later_ones]))
    # A refusal is not one of the common answers
    refusal = app.planner.refused(jobs["refused"], 550, "5.1.1 no such user")
    allowed.append(record("W", [refusal, accepted(jobs["stays"])], []))
    names = {j.envelope.message_id: n for n, j in jobs.items()}
    return [{names[mid] for mid in a} for a in allowed], {
        **rows(app), "ids": {n: j.enrollment_id for n, j in jobs.items()}}


def rows(app: App) -> dict[str, Any]:
    E, T, S = m.Enrollment, m.Touch, m.StatusChange
    with app.db.session() as s:
        return {
            "enrollments": sorted(s.execute(select(
                E.id, E.status, E.next_step, E.next_due_at, E.last_touch_at, E.attempts,
                E.claimed_by, E.claimed_until, E.status_reason)).all()),
            "touches": sorted(s.execute(select(
                T.enrollment_id, T.step_id, T.state, T.handed_at, T.accepted_at,
                T.smtp_code, T.smtp_response)).all()),
            "status_changes": sorted(s.execute(select(
                S.enrollment_id, S.old, S.new, S.reason, S.at)).all()),
        }


def test_the_loop_writes_what_the_sending_store_writes(
        tmp_path: Path, pg_cluster: PostgresCluster) -> None:
    # Given the same campaigns, leads and clock in two databases
    one = workspace(tmp_path / "store", pg_cluster.create_database("ledger_store"))
    two = workspace(tmp_path / "loop", pg_cluster.create_database("ledger_loop"))
    loop_records = LoopRecords(two.db.sending, conninfo(two.db.conn.engine))

    def on_the_loop(worker: str, outcomes: Sequence[Outcome], hand: Sequence[str]) -> set[str]:
        async def once() -> set[str]:
            try:
                return await loop_records.record(worker, outcomes, hand)
            finally:
                await loop_records.close()
        return asyncio.run(once())

    # When the same group commits go through the sending store and through the loop's
    expected_allowed, expected = scenario(one, one.db.record)
    got_allowed, got = scenario(two, on_the_loop)
    # Then the two leave the very same rows, and allow the same mails
    assert got_allowed == expected_allowed
    for table in expected:
        assert got[table] == expected[table], table
    # ... the common groups were one statement on the loop, the refusal went to the store
    assert (loop_records.grouped, loop_records.threaded) == (2, 1)
    # ... and the rows are the ones each case calls for
    assert got_allowed == [set(got["ids"]) - {"withdrawn", "stays", "answered"}, {"stays"},
                           set()]
    by_name = {n: next(r for r in got["enrollments"] if r.id == i) for n, i in got["ids"].items()}
    touch = {n: next(t.state for t in got["touches"] if t.enrollment_id == i)
             for n, i in got["ids"].items()}
    audit = {n: [(c.old, c.new) for c in got["status_changes"] if c.enrollment_id == i]
             for n, i in got["ids"].items()}
    assert {n: (r.status, r.next_step, r.claimed_by) for n, r in by_name.items()} == {
        "moves": ("active", 1, None), "replied": ("replied", 1, None),
        "taken": ("active", 1, "OTHER"), "later": ("active", 1, "OTHER"),
        "withdrawn": ("paused", 0, None), "stays": ("active", 1, None),
        "answered": ("active", 0, None),
        "waited": ("active", 1, None), "finishes": ("completed", 1, None),
        "stopped": ("replied", 1, None), "refused": ("bounced", 0, None)}
    assert by_name["later"].next_due_at.year == 2027  # the later date of the takeover is kept
    assert by_name["moves"].next_due_at == by_name["taken"].next_due_at  # three days on
    assert touch == {n: "accepted" for n in got["ids"]} | {"withdrawn": "cancelled",
                                                           "refused": "bounced"}
    assert {n: a for n, a in audit.items() if a} == {
        "waited": [("waiting", "active")], "finishes": [("active", "completed")],
        "refused": [("active", "bounced")]}


def test_a_lost_connection_fails_one_group_and_the_next_reconnects(
        tmp_path: Path, pg_url: str) -> None:
    # Given a worker's loop connection, used once
    app = workspace(tmp_path, pg_url)
    enrol(app, "two", ["a", "b"])
    now = app.clock.now()
    jobs = app.planner.prepare(app.db.claim_due("W", now, 10, 300), now)
    records = LoopRecords(app.db.sending, conninfo(app.db.conn.engine))

    async def story() -> tuple[set[str], str, set[str]]:
        first = await records.record("W", [], [jobs[0].envelope.message_id])
        assert records.conn is not None
        pid = records.conn.info.backend_pid
        # When PostgreSQL ends that connection (a restart, an administrator)
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        try:
            await records.record("W", [accepted(jobs[0])], [])
            error = ""
        except StoreError as exc:
            error = str(exc)
        # Then that group fails with a store error (the channel keeps its answer and retries)
        # and the next one opens a new connection and is recorded
        again = await records.record("W", [accepted(jobs[0])], [jobs[1].envelope.message_id])
        await records.close()
        return first, error, again

    first, error, again = asyncio.run(story())
    assert first == {jobs[0].envelope.message_id}
    assert error.startswith("database error")
    assert again == {jobs[1].envelope.message_id}
    with app.db.session() as s:
        states = dict(s.execute(select(m.Touch.message_id, m.Touch.state)).all())
    assert states == {jobs[0].envelope.message_id: "accepted",
                      jobs[1].envelope.message_id: "handed_over"}
