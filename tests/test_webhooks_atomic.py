"""Webhook events and the change they report commit together: suppressing a lead (the
suppression, its closed enrolments, the event) and forgetting one (the deletion and
``lead.erased``). A failure is injected in the real SQLite database (a trigger that aborts the
second half of the change); then the outbox is delivered to the receiver that verifies each
signature, which must get nothing for the change that did not happen, and one event once the
change is done."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from tests.servers.webhook_receiver import WebhookReceiver
from tests.test_webhooks_e2e import deliver_all
from tests.webhookkit import SECRET
from tests.workspace import make_app, two_steps
from worker.app import App
from worker.commands.people import forget
from worker.errors import StoreError


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    got = WebhookReceiver(SECRET).up()
    try:
        yield got
    finally:
        got.down()


def hooked_app(tmp: Path, receiver: WebhookReceiver) -> tuple[App, int]:
    """A workspace with a ``crm`` endpoint and one lead enrolled in ``drip``; the events of
    the enrolment already delivered."""
    two_steps(tmp, "drip")
    app = make_app(tmp, WEBHOOKS__CRM__URL=receiver.url, WEBHOOKS__CRM__SECRET=SECRET)
    lead_id = app.service.intake({"email": "ann@acme.test", "first_name": "Ann"},
                                 campaign="drip").lead_id
    deliver_all(app)
    return app, lead_id


def types(receiver: WebhookReceiver) -> list[str]:
    assert all(r.verified for r in receiver.received)
    return [r.json()["type"] for r in receiver.delivered()]


def outbox_types(app: App) -> list[str]:
    with app.db.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT type FROM webhook_outbox ORDER BY seq"))]


def test_a_suppression_whose_enrolments_cannot_be_closed_leaves_nothing_behind(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    app, lead_id = hooked_app(tmp_path, receiver)
    assert types(receiver) == ["lead.created", "lead.enrolled"]
    # Given a database that fails while closing the lead's enrolments
    with app.db.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER no_close BEFORE INSERT ON status_changes "
                          "BEGIN SELECT RAISE(ABORT, 'disk gone'); END"))
    # When the address bounces at SMTP time (the dispatcher's on_bounce)
    with pytest.raises((IntegrityError, StoreError)):
        app.suppress.smtp_bounce(lead_id, 550, "5.1.1 <ann@acme.test>: no such user")
    # Then nothing of it was kept: no suppression, the enrolment still open, no event
    assert app.db.suppression_for("ann@acme.test") is None
    assert [r.status for r in app.db.enrollments_of(lead_id)] == ["active"]
    assert outbox_types(app) == ["lead.created", "lead.enrolled"]
    deliver_all(app)
    assert types(receiver) == ["lead.created", "lead.enrolled"]
    # When the database is well again and the bounce is handled again
    with app.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER no_close"))
    app.suppress.smtp_bounce(lead_id, 550, "5.1.1 <ann@acme.test>: no such user")
    # Then the address is suppressed, the enrolment closed, one lead.suppressed delivered
    assert app.db.suppression_for("ann@acme.test") == "bounced"
    assert [r.status for r in app.db.enrollments_of(lead_id)] == ["bounced"]
    deliver_all(app)
    assert types(receiver) == ["lead.created", "lead.enrolled", "lead.suppressed"]
    assert receiver.delivered()[-1].json()["data"]["reason"] == "bounced"
    app.db.engine.dispose()


def test_a_forget_whose_deletion_fails_sends_no_lead_erased_and_a_second_run_sends_one(
        tmp_path: Path, receiver: WebhookReceiver) -> None:
    app, _lead_id = hooked_app(tmp_path, receiver)
    settings = app.settings
    # Given a database that fails while deleting the lead
    with app.db.engine.begin() as conn:
        conn.execute(text("CREATE TRIGGER no_delete BEFORE DELETE ON leads "
                          "BEGIN SELECT RAISE(ABORT, 'disk gone'); END"))
    # When the lead is forgotten
    with pytest.raises((IntegrityError, StoreError)):
        forget(argparse.Namespace(email="ann@acme.test"), lambda: settings)
    # Then the address is already never mailed again (the hash goes in first, by design),
    # the lead is still there and no lead.erased was written nor delivered
    assert app.db.suppression_for("ann@acme.test") == "erased"
    assert app.db.lead_by_email("ann@acme.test") is not None
    assert "lead.erased" not in outbox_types(app)
    deliver_all(app)
    assert "lead.erased" not in types(receiver)
    # When forget runs again on a healthy database
    with app.db.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER no_delete"))
    assert forget(argparse.Namespace(email="ann@acme.test"), lambda: settings) == 0
    # Then the lead is gone and exactly one lead.erased (the keyed hash only) arrives
    assert app.db.lead_by_email("ann@acme.test") is None
    deliver_all(app)
    erased = [r.json() for r in receiver.delivered() if r.json()["type"] == "lead.erased"]
    assert [e["data"] for e in erased] == [{"email_hash": app.db.email_hash("ann@acme.test")}]
    app.db.engine.dispose()
