"""The webhook outbox on SQLite and on a real PostgreSQL: enqueue inside the caller's
transaction, claim with per-lead ordering, mark, stats, replay; two claimers on PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.migrationkit import downgrade, schema_diff
from tests.webhookkit import START, SetClock, migrated_engine
from worker.adapters.db.webhook_store import WebhookStore
from worker.domain import webhooks as wh
from worker.domain.model import Lead
from worker.errors import StoreError

FILTERS: dict[str, frozenset[str] | None] = {"crm": None,
                                             "chat": frozenset({"lead.replied"})}


def lead(n: int) -> Lead:
    return Lead(email=f"l{n}@acme.example", id=n, first_name=f"L{n}")


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = (f"sqlite:///{tmp_path}/w.db" if request.param == "sqlite"
           else request.getfixturevalue("pg_url"))
    eng = migrated_engine(url)
    yield eng
    eng.dispose()


def test_events_commit_or_roll_back_with_the_callers_transaction(engine: Engine) -> None:
    store = WebhookStore(engine, FILTERS, SetClock())
    # Given a change whose transaction fails after the events were written
    with pytest.raises(RuntimeError), engine.begin() as conn:
        store.enqueue(conn, [wh.lead_created(lead(1), START)])
        raise RuntimeError("the change failed")
    assert store.pending_count() == 0
    # When it commits, one row per endpoint that wants the event
    with engine.begin() as conn:
        conn.execute(text("SELECT 1"))
        assert store.enqueue(conn, [wh.lead_replied(lead(1), START, "c", "s", "reply", None,
                                                    "yes")]) == 2
    assert store.pending_count() == 2


def test_a_claim_takes_the_oldest_event_of_each_lead_and_endpoint_only(engine: Engine) -> None:
    clock = SetClock()
    store = WebhookStore(engine, {"crm": None}, clock)
    store.enqueue_now([wh.lead_created(lead(1), START), wh.lead_enrolled(lead(1), START, "c"),
                       wh.lead_created(lead(2), START), wh.lead_erased("ab" * 32, START),
                       wh.lead_erased("cd" * 32, START)])
    # When one worker claims
    first = store.claim_due("w1", 10, lease_s=60)
    # Then lead 1's second event waits for its first; events without a lead are not held
    assert [(e.lead_id, e.type) for e in first] == [
        (1, "lead.created"), (2, "lead.created"), (None, "lead.erased"), (None, "lead.erased")]
    assert store.claim_due("w2", 10, lease_s=60) == []
    # And while the first is being retried, the second still waits
    store.mark_retry(first[0].webhook_id, START, START, "HTTP 500")
    again = store.claim_due("w1", 10, lease_s=60)
    assert [(e.lead_id, e.type, e.webhook_id) for e in again] == [
        (1, "lead.created", first[0].webhook_id)]
    assert again[0].attempts == 1
    store.mark_delivered(again[0].webhook_id, START)
    assert [(e.lead_id, e.type) for e in store.claim_due("w1", 10, lease_s=60)] == [
        (1, "lead.enrolled")]


def test_a_retry_is_not_due_before_its_time_and_a_lease_ends(engine: Engine) -> None:
    clock = SetClock()
    store = WebhookStore(engine, {"crm": None}, clock)
    store.enqueue_now([wh.lead_created(lead(1), START)])
    (event,) = store.claim_due("w1", 10, lease_s=60)
    # A claimed event whose worker died comes back when its lease ends, with the same id
    clock.advance(59)
    assert store.claim_due("w2", 10, lease_s=60) == []
    clock.advance(2)
    (back,) = store.claim_due("w2", 10, lease_s=60)
    assert back.webhook_id == event.webhook_id
    store.mark_retry(back.webhook_id, clock.now(), clock.now() + timedelta(seconds=30), "timed out")
    assert store.claim_due("w2", 10, lease_s=60) == []
    clock.advance(30)
    assert [e.webhook_id for e in store.claim_due("w2", 10, lease_s=60)] == [event.webhook_id]


def test_stats_and_replay_per_endpoint(engine: Engine) -> None:
    clock = SetClock()
    store = WebhookStore(engine, FILTERS, clock)
    store.enqueue_now([wh.lead_replied(lead(n), START, None, None, "reply", None, "hi")
                       for n in (1, 2, 3)])
    claimed = {(e.endpoint, e.lead_id): e for e in store.claim_due("w", 10, lease_s=60)}
    store.mark_delivered(claimed["crm", 1].webhook_id, START)
    store.mark_failed(claimed["crm", 2].webhook_id, START, "HTTP 500: boom")
    clock.advance(60)
    store.mark_retry(claimed["chat", 3].webhook_id, clock.now(), clock.now(), "connection refused")
    stats = store.stats()
    assert (stats["crm"].pending, stats["crm"].delivered, stats["crm"].failed) == (1, 1, 1)
    assert stats["crm"].last_error == "HTTP 500: boom" and stats["crm"].last_error_at == START
    assert stats["chat"].pending == 3 and stats["chat"].last_error == "connection refused"
    assert stats["crm"].last_delivered_at == START and stats["chat"].oldest_pending_at == START
    # Replaying the failed ones queues them again under the same id, with a fresh max age
    assert store.replay("crm", failed_only=True) == 1
    clock.advance(61)
    ids = {e.webhook_id for e in store.claim_due("w", 10, lease_s=60, endpoints=["crm"])}
    assert claimed["crm", 2].webhook_id in ids
    assert store.replay("crm", since=clock.now()) == 0
    assert store.replay("crm") == 1  # the delivered one


def test_a_database_error_is_a_store_error(tmp_path: Path) -> None:
    engine = migrated_engine(f"sqlite:///{tmp_path}/w.db")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE webhook_outbox"))
    with pytest.raises(StoreError, match="webhook outbox"):
        WebhookStore(engine, FILTERS).claim_due("w", 1, lease_s=1)


@pytest.mark.postgres
def test_two_claimers_on_postgresql_never_get_the_same_event(pg_url: str) -> None:
    # Given 600 events of 300 leads (two per lead) on PostgreSQL
    engine = migrated_engine(pg_url)
    store = WebhookStore(engine, {"crm": None})
    store.enqueue_now([e for n in range(300) for e in (wh.lead_created(lead(n), START),
                                                        wh.lead_enrolled(lead(n), START, "c"))])
    got: dict[str, list[str]] = {"a": [], "b": []}
    barrier = threading.Barrier(2)
    order: list[tuple[int | None, str]] = []
    lock = threading.Lock()

    def claimer(name: str) -> None:
        barrier.wait()
        while True:
            batch = store.claim_due(name, 7, lease_s=600)
            if not batch:
                if store.pending_count() == 0:
                    return
                continue
            for event in batch:
                got[name].append(event.webhook_id)
                with lock:
                    order.append((event.lead_id, event.type))
                store.mark_delivered(event.webhook_id, START)

    # When two workers claim and deliver concurrently
    threads = [threading.Thread(target=claimer, args=(n,)) for n in got]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    # Then every event was claimed exactly once, and both workers took a share
    everything = got["a"] + got["b"]
    assert len(everything) == 600 and len(set(everything)) == 600
    assert got["a"] and got["b"]
    # And each lead's events were delivered in order, whichever worker took them
    for n in range(300):
        assert order.index((n, "lead.created")) < order.index((n, "lead.enrolled"))
    engine.dispose()


def test_the_migration_matches_the_models_and_downgrades(engine: Engine) -> None:
    from sqlalchemy import inspect

    from worker.adapters.db.models import Base

    assert schema_diff(engine, Base.metadata, "webhook") == []
    downgrade(engine, "0001")
    assert "webhook_outbox" not in inspect(engine).get_table_names()
    migrated_engine(str(engine.url.render_as_string(hide_password=False))).dispose()
    assert "webhook_outbox" in inspect(engine).get_table_names()
