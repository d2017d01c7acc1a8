"""Webhooks from the real flows: the shared campaign scenario (a real SMTP server, Dovecot,
`nurture leads import`, `tasks done`, `forget`) played with an endpoint configured, then the
outbox delivered to a receiver that verifies every signature with ``standardwebhooks``.
The one-click unsubscribe over HTTP (a running worker delivering by itself) is in
test_webhooks_worker.py."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scenario import LEADS, Scenario, play, write_campaigns
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.servers.webhook_receiver import WebhookReceiver
from tests.webhookkit import SECRET
from worker.adapters.webhook_http import WebhookPoster
from worker.app import App
from worker.domain.webhooks import EventType
from worker.engine.webhooks import WebhookDelivery


class HookedScenario(Scenario):
    """The shared scenario with a ``crm`` endpoint at ``url``."""

    url: str = ""

    def write_config(self, db_url: str, path: Path) -> Path:
        super().write_config(db_url, path)
        with path.open("a", encoding="utf-8") as f:
            f.write(f'[webhooks.crm]\nurl = "{self.url}"\n')
        return path

    def env(self) -> dict[str, str]:
        return {**super().env(), "NURTURE_WEBHOOKS__CRM__SECRET": SECRET}


def deliver_all(app: App) -> int:
    """Post the whole outbox as the worker's delivery loop does; returns how many attempts."""
    assert app.db.outbox is not None

    async def go() -> int:
        poster = WebhookPoster()
        delivery = WebhookDelivery(app.db.outbox, poster, app.settings.webhooks.enabled(),
                                   app.clock, worker_id="test")
        total = 0
        try:
            while (n := await delivery.deliver_due()) > 0:
                total += n
        finally:
            await poster.close()
        return total

    return asyncio.run(go())


@pytest.fixture(scope="module")
def hooked(tmp_path_factory: pytest.TempPathFactory,
           dovecot: Dovecot) -> Iterator[tuple[HookedScenario, WebhookReceiver]]:
    root = tmp_path_factory.mktemp("hooked")
    write_campaigns(root / "campaigns")
    smtp = ScriptedSmtpServer().start()
    receiver = WebhookReceiver(SECRET).up()
    HookedScenario.url = receiver.url
    try:
        sc = HookedScenario(root, smtp, dovecot, dovecot.add_user())
        sc.scripted = play(sc)
        # A second import changes a name (lead.updated); forget erases a lead (lead.erased).
        csv = root / "again.csv"
        csv.write_text("email,first_name,company\nalice@a.example,Alicia,Acme\n", "utf-8")
        assert sc.cli("leads", "import", str(csv))[0] == 0
        assert sc.cli("forget", "gina@g.example")[0] == 0
        app = sc.app()
        try:
            deliver_all(app)
        finally:
            app.db.engine.dispose()
        yield sc, receiver
    finally:
        receiver.down()
        smtp.close()


def by_type(receiver: WebhookReceiver) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in receiver.delivered():
        body = r.json()
        out[body["type"]].append(body)
    return out


def test_every_event_type_of_the_real_flows_arrives_verified(
        hooked: tuple[HookedScenario, WebhookReceiver]) -> None:
    _sc, receiver = hooked
    # Every request verified with the standardwebhooks package and was answered 2xx
    assert receiver.received and all(r.verified for r in receiver.received)
    got = by_type(receiver)
    expected = set(EventType) - {EventType.PING}
    assert expected <= set(got), f"missing: {sorted(expected - set(got))}"
    # Import: one lead.created per lead of the CSV (gina's left the outbox when she was
    # forgotten before the delivery)
    created = sorted(e["data"]["lead"]["email"] for e in got["lead.created"])
    assert created == sorted(set(LEADS) - {"gina@g.example"})
    assert {e["data"]["campaign"] for e in got["lead.enrolled"]} >= {"drip"}
    # The second import changed alice's name and company
    (upd,) = got["lead.updated"]
    assert upd["data"]["lead"]["first_name"] == "Alicia"
    assert set(upd["data"]["changed"]) == {"first_name", "company"}


def test_event_bodies_say_what_happened(hooked: tuple[HookedScenario, WebhookReceiver]) -> None:
    sc, receiver = hooked
    got = by_type(receiver)
    lead = {e["data"]["lead"]["email"] for e in got["mail.sent"]}
    assert "alice@a.example" in lead and "zed@z.example" not in lead
    sent = {(e["data"]["lead"]["email"], e["data"]["step"]) for e in got["mail.sent"]}
    assert ("bob@b.example", "hello") in sent
    # Refused at SMTP time (550 5.1.1): mail.failed with the code, and the address suppressed
    (failed,) = got["mail.failed"]
    assert failed["data"]["lead"]["email"] == "zed@z.example"
    assert failed["data"]["smtp_code"] == 550
    suppressed = {e["data"]["lead"]["email"]: e["data"]["reason"] for e in got["lead.suppressed"]}
    assert suppressed["zed@z.example"] == "bounced"
    # Bob's reply: its class and the new text
    (rep,) = [e for e in got["lead.replied"] if e["data"]["lead"]["email"] == "bob@b.example"]
    assert "call me on Tuesday" in rep["data"]["text"]
    assert rep["data"]["campaign"] == "drip" and rep["data"]["step"] == "hello"
    # Carol's out-of-office carries the return date
    (ooo,) = got["lead.auto_replied"]
    assert ooo["data"]["lead"]["email"] == "carol@c.example"
    assert ooo["data"]["return_date"] == "2026-03-04"
    # Dave's bounce report: hard, with the server's words
    bounced = {e["data"]["lead"]["email"]: e["data"] for e in got["lead.bounced"]}
    assert set(bounced) == {"dave@d.example", "zed@z.example"}
    bounce = bounced["dave@d.example"]
    assert bounce["kind"] == "hard" and "5.1.1" in bounce["server_words"]
    # Zed's 5.1.1 refusal at SMTP time is a hard bounce too, with the step and server's words
    assert bounced["zed@z.example"]["kind"] == "hard"
    assert bounced["zed@z.example"]["server_words"] == failed["data"]["server_words"]
    assert bounced["zed@z.example"]["step"] == failed["data"]["step"] is not None
    # Erin unsubscribed by replying
    unsub = {e["data"]["lead"]["email"]: e["data"]["how"] for e in got["lead.unsubscribed"]}
    assert unsub["erin@e.example"] == "reply"
    # Frank's call task: created, then done with the rep's note; then he completed into news
    created = [e for e in got["task.created"] if e["data"]["lead"]["email"] == "frank@f.example"]
    done = [e for e in got["task.done"] if e["data"]["lead"]["email"] == "frank@f.example"]
    assert created and done and done[0]["data"]["task"]["id"] == created[0]["data"]["task"]["id"]
    assert done[0]["data"]["task"]["note"] == "left a voicemail"
    assert created[0]["data"]["task"]["kind"] == "call"
    (finished,) = [e for e in got["enrollment.completed"]
                   if e["data"]["lead"]["email"] == "frank@f.example"]
    assert finished["data"] == {**finished["data"], "campaign": "drip", "next_campaign": "news"}
    # ... and his enrolment in news, made by on_finish, is a lead.enrolled of its own
    frank_enrolled = [e["data"]["campaign"] for e in got["lead.enrolled"]
                      if e["data"]["lead"]["email"] == "frank@f.example"]
    assert frank_enrolled.count("news") == 1
    # Forget: the only trace is the keyed hash, and gina's earlier events left the outbox
    (erased,) = got["lead.erased"]
    assert set(erased["data"]) == {"email_hash"}
    app = sc.app()
    try:
        assert erased["data"]["email_hash"] == app.db.email_hash("gina@g.example")
        with app.db.engine.connect() as conn:
            bodies = [r[0] for r in conn.exec_driver_sql("SELECT body FROM webhook_outbox")]
    finally:
        app.db.engine.dispose()
    assert not any("gina@g.example" in b for b in bodies)
    # Nothing secret in any body: no unsubscribe token, no signing secret
    for r in receiver.received:
        text = r.body.decode()
        assert SECRET not in text and "/u/" not in text


def test_events_of_a_lead_arrive_in_the_order_they_happened(
        hooked: tuple[HookedScenario, WebhookReceiver]) -> None:
    _sc, receiver = hooked
    per_lead: dict[int, list[str]] = defaultdict(list)
    for r in receiver.delivered():
        body = r.json()
        if "lead" in body["data"]:
            per_lead[body["data"]["lead"]["id"]].append(body["timestamp"])
    assert per_lead and all(stamps == sorted(stamps) for stamps in per_lead.values())
    # And each webhook-id arrived once (no kill, no retry here)
    ids = [r.webhook_id for r in receiver.received]
    assert len(ids) == len(set(ids))
    frank = next(v for v in per_lead.values() if len(v) > 5)
    assert json.dumps(frank)  # a lead with a long history was checked
