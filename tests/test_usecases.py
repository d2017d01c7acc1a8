"""The use-cases on their own, each built from its ports with the in-memory store
(``tests/memstore.py``): intake, the by-hand actions, "this address is dead", inbound mail
and the task digest, without a database (the real-server tests cover the database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from tests.classifykit import STEP_ID, mail
from tests.memstore import MemStore
from tests.workspace import REPO, FakeClock, email_template, settings_for, write_campaign
from worker.adapters.campaign_folders import load_catalog
from worker.domain.catalog import Catalog
from worker.domain.model import EnrollmentStatus, SuppressionReason
from worker.errors import LeadError, NotFound, UserError
from worker.ports import RawMessage
from worker.usecases.by_hand import ByHand
from worker.usecases.inbound import Inbound
from worker.usecases.intake import Intake
from worker.usecases.intent_actions import IntentActions
from worker.usecases.notify import task_digests
from worker.usecases.reclassify import Reclassify
from worker.usecases.suppress import Suppress

SEQ = """
    name = "Seq"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"
    enroll_tags = ["lead"]
    [[step]]
    id = "one"
    wait = "0"
    window = false
    template = "one.md"
    [[step]]
    id = "two"
    wait = "3d"
    window = false
    template = "one.md"
"""
HOT = """
    name = "Hot"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"
    enroll_when = "'contact_request' in events"
    [[step]]
    id = "call"
    wait = "2d"
    window = false
    template = "one.md"
"""


@dataclass
class Counts:
    """The InboundMetrics port, counting."""

    classes: list[str] = field(default_factory=list)
    replies: list[float] = field(default_factory=list)

    def inbound_message(self, cls: str) -> None:
        self.classes.append(cls)

    def replied(self, seconds: float) -> None:
        self.replies.append(seconds)


@dataclass
class World:
    """The use-cases wired as app.py wires them, on the in-memory store."""

    clock: FakeClock
    store: MemStore
    catalog: Catalog
    wakes: list[int]
    intake: Intake
    by_hand: ByHand
    suppress: Suppress
    inbound: Inbound
    metrics: Counts
    reclassify: Reclassify


@pytest.fixture
def world(tmp_path: Path) -> World:
    files = {"one.md": email_template("Hello")}
    write_campaign(tmp_path / "campaigns", "seq", SEQ, files)
    write_campaign(tmp_path / "campaigns", "hot", HOT, files)
    catalog = load_catalog(tmp_path / "campaigns", REPO / "templates")
    assert not catalog.problems
    settings = settings_for(tmp_path, NOTIFY__DEFAULT_OWNER="boss@acme.example",
                            INBOUND__SOFT_BOUNCE_LIMIT="2")
    clock, wakes, metrics = FakeClock(), [], Counts()
    store = MemStore(clock)
    suppress = Suppress(store)

    def wake() -> None:
        wakes.append(1)

    # the reply's intent acts through the same ports as app.py wires (no database)
    intents = IntentActions(store, store, store, lambda: catalog, clock, settings.inbound,
                            "boss@acme.example")
    inbound = Inbound(store, lambda: catalog, clock, metrics, suppress, settings.inbound,
                      settings.notify, b"k" * 32, intents)
    return World(
        clock, store, catalog, wakes,
        Intake(store, store, lambda: catalog, clock, wake, "boss@acme.example"),
        ByHand(store, lambda: catalog, clock, wake, suppress), suppress, inbound, metrics,
        Reclassify(store, store, inbound, lambda: catalog, clock))


def statuses(w: World, email: str) -> dict[str, str]:
    lead = w.store.lead_by_email(email)
    assert lead is not None
    return {r.campaign: r.status for r in w.store.enrollments_of(lead.id)}


# --- intake ---------------------------------------------------------------------------------


def test_intake_enrols_by_tag_wakes_the_loop_and_reports_what_it_did(world: World) -> None:
    # When a tagged lead comes in, then again with a new first name
    first = world.intake.intake({"email": "Ann@Acme.test", "tags": "lead"})
    again = world.intake.intake({"email": "ann@acme.test", "first_name": "Ann"}, tags=["lead"])
    # Then it is stored once, enrolled in the campaign of its tag, and the loop is woken
    # for the first step (due now)
    assert (first.outcome, first.enrolled, first.already) == ("imported", ["seq"], [])
    assert (again.lead_id, again.outcome, again.enrolled, again.already) == (
        first.lead_id, "updated", [], ["seq"])
    assert statuses(world, "ann@acme.test") == {"seq": "active"}
    assert world.wakes
    assert world.store.lead_by_id(first.lead_id).first_name == "Ann"  # type: ignore[union-attr]


def test_intake_refuses_a_suppressed_address_and_an_unknown_campaign_storing_nothing(
        world: World) -> None:
    world.store.add_suppression("gone@acme.test", "bounced", "smtp 550")
    with pytest.raises(LeadError) as refused:
        world.intake.intake({"email": "gone@acme.test"}, campaign="seq")
    assert refused.value.field == "email" and "suppressed (bounced)" in refused.value.reason
    with pytest.raises(NotFound):
        world.intake.intake({"email": "new@acme.test"}, campaign="nope")
    assert world.store.leads == {}


def test_a_contact_request_enrols_by_enroll_when_prioritises_and_tells_the_owner(
        world: World) -> None:
    # Given a lead in a running sequence
    lead_id = world.intake.intake({"email": "bo@acme.test"}, campaign="seq").lead_id
    world.wakes.clear()
    # When it asks to be contacted
    got_id, enrolled = world.intake.record_event("bo@acme.test", "contact_request", {"x": "1"})
    # Then the campaign whose enroll_when became true enrols it, every running enrolment
    # moves to the front, the default owner is told, and the loop is woken
    assert (got_id, enrolled) == (lead_id, ["hot"])
    assert {r.campaign: r.priority for r in world.store.enrollments_of(lead_id)} == {
        "seq": 1, "hot": 1}
    assert [(n.kind, n.to_addr) for n in world.store.notes] == [
        ("contact_request", "boss@acme.example")]
    assert world.wakes
    with pytest.raises(LeadError):
        world.intake.record_event("bo@acme.test", "Not An Event!", {})


# --- by hand --------------------------------------------------------------------------------


def test_pause_resume_cancel_by_hand(world: World) -> None:
    world.intake.intake({"email": "cy@acme.test"}, campaign="seq")
    assert world.by_hand.pause("cy@acme.test", None) == ["seq"]
    assert statuses(world, "cy@acme.test") == {"seq": "paused"}
    with pytest.raises(UserError):
        world.by_hand.pause("cy@acme.test", None)  # nothing running to pause
    world.wakes.clear()
    assert world.by_hand.resume("cy@acme.test", "seq") == ["seq"]
    assert statuses(world, "cy@acme.test") == {"seq": "active"} and world.wakes
    assert world.by_hand.cancel("cy@acme.test", None) == ["seq"]
    assert statuses(world, "cy@acme.test") == {"seq": "cancelled"}
    with pytest.raises(NotFound):
        world.by_hand.pause("nobody@acme.test", None)


def test_unsubscribe_suppresses_closes_everything_and_is_done_once(world: World) -> None:
    lead_id = world.intake.intake({"email": "di@acme.test", "tags": "lead"}).lead_id
    world.intake.record_event("di@acme.test", "contact_request", {})
    assert world.by_hand.unsubscribe(lead_id, "one-click") is True
    assert world.by_hand.unsubscribe(lead_id, "one-click") is False
    assert world.by_hand.unsubscribe(999, "one-click") is False
    assert world.store.suppression_for("di@acme.test") == "unsubscribed"
    assert statuses(world, "di@acme.test") == {"seq": "unsubscribed", "hot": "unsubscribed"}
    with pytest.raises(LeadError):  # and a suppressed lead is not resumed either
        world.by_hand.resume("di@acme.test", None)


def test_finishing_the_task_a_sequence_waits_for_dates_its_next_step(world: World) -> None:
    # Given an enrolment waiting for its owner's task (no due date)
    lead_id = world.intake.intake({"email": "ed@acme.test"}, campaign="seq").lead_id
    row = world.store.enrollments_of(lead_id)[0]
    world.store.set_enrollment(row.id, status="active", reason="task open", next_due_at=None,
                               next_step=1)
    task = world.store.add_touch(row, "one", kind="task", state="open", owner="rep@acme.test",
                                 task_kind="call", task_text="Call Ed")
    # When the task is done
    world.clock.advance(days=1)
    done = world.by_hand.complete_task(task.id, "left a voicemail")
    # Then the next step is due its wait ("3d") after the task was done
    assert (done.state, done.note) == ("done", "left a voicemail")  # type: ignore[attr-defined]
    assert row.next_due_at == world.clock.now() + timedelta(days=3)
    assert row.status_reason == f"task {task.id} done"
    with pytest.raises(UserError):
        world.by_hand.complete_task(task.id, None)


# --- the one "address is dead" consequence --------------------------------------------------


def test_suppress_closes_only_open_enrolments_and_adds_the_address_once(world: World) -> None:
    lead_id = world.intake.intake({"email": "fi@acme.test"}, campaign="seq").lead_id
    world.intake.intake({"email": "fi@acme.test"}, campaign="hot")
    world.by_hand.cancel("fi@acme.test", "hot")
    done = world.suppress(lead_id, SuppressionReason.BOUNCED, EnrollmentStatus.BOUNCED,
                          "smtp 550 " + "x" * 900)
    assert done is not None and done.added and [c for _, c in done.closed] == ["seq"]
    assert statuses(world, "fi@acme.test") == {"seq": "bounced", "hot": "cancelled"}
    assert len(world.store.enrollments[0].status_reason) == 500
    again = world.suppress(lead_id, SuppressionReason.BOUNCED, EnrollmentStatus.BOUNCED, "x")
    assert again is not None and not again.added and again.closed == []
    assert world.suppress(999, SuppressionReason.BOUNCED, EnrollmentStatus.BOUNCED, "x") is None


# --- inbound --------------------------------------------------------------------------------


def sent_step(world: World, email: str) -> int:
    """A lead in "seq" who got its first step (Message-ID STEP_ID)."""
    lead_id = world.intake.intake({"email": email, "owner": "rep@acme.example"},
                                  campaign="seq").lead_id
    row = world.store.enrollments_of(lead_id)[0]
    world.store.add_touch(row, "one", message_id=STEP_ID, touch_number=1)
    return lead_id


def raw(data: bytes, uid: str = "1") -> RawMessage:
    return RawMessage("default", "INBOX", uid, 1, data, len(data))


def test_a_reply_on_our_thread_stops_the_sequence_forwards_it_and_counts_once(
        world: World) -> None:
    sent_step(world, "lead@example.com")
    reply = mail("Thanks, call me on Monday.")
    world.clock.advance(minutes=5)
    assert world.inbound.handle(raw(reply)) is True
    assert world.inbound.handle(raw(reply, uid="2")) is False  # the same message again
    assert statuses(world, "lead@example.com") == {"seq": "replied"}
    recorded = list(world.store.inbound.values())
    assert [(r["cls"], r["matched_by"]) for r in recorded] == [("human", "in_reply_to")]
    assert [(n.kind, n.to_addr) for n in world.store.notes] == [("reply", "rep@acme.example")]
    assert world.store.notes[0].reply is not None
    assert world.store.notes[0].reply.address == "lead@example.com"
    assert world.metrics.classes == ["human"] and len(world.metrics.replies) == 1


def test_a_hard_bounce_naming_our_mail_suppresses_through_the_one_consequence(
        world: World) -> None:
    sent_step(world, "lead@example.com")
    assert world.inbound.handle(raw(dsn("5.1.1", "smtp; 550 5.1.1 User unknown")))
    assert world.store.suppression_for("lead@example.com") == "bounced"
    assert statuses(world, "lead@example.com") == {"seq": "bounced"}
    (recorded,) = world.store.inbound.values()
    assert recorded["matched_by"] == "dsn_message_id"
    assert recorded["action"] == "suppressed (bounced); 1 enrolment(s) bounced"


def test_a_report_naming_none_of_our_mails_is_shown_never_acted_on(world: World) -> None:
    lead_id = world.intake.intake({"email": "lead@example.com"}, campaign="seq").lead_id
    assert world.inbound.handle(raw(dsn("5.1.1", "smtp; 550 5.1.1 User unknown",
                                        original="someone-else@elsewhere.test")))
    (recorded,) = world.store.inbound.values()
    assert (recorded["lead_id"], recorded["matched_by"]) == (lead_id, "final_recipient")
    assert recorded["action"].startswith("none: the report names none of our mails")
    assert world.store.suppression_for("lead@example.com") is None
    assert statuses(world, "lead@example.com") == {"seq": "active"}


# --- notifications --------------------------------------------------------------------------


def test_the_task_digest_gives_each_owner_their_open_tasks_soonest_first(world: World) -> None:
    lead_id = world.intake.intake({"email": "gi@acme.test"}, campaign="seq").lead_id
    row = world.store.enrollments_of(lead_id)[0]
    now = world.clock.now()
    for owner, days, text in (("b@acme.test", 2, "later"), ("a@acme.test", 3, "a's"),
                              ("b@acme.test", 1, "sooner"), (None, 0, "nobody's")):
        world.store.add_touch(row, "one", kind="task", state="open", owner=owner,
                              task_text=text, due_at=now + timedelta(days=days))
    digests = list(task_digests(world.store.open_tasks()))
    assert [(owner, subject) for owner, subject, _ in digests] == [
        ("b@acme.test", "Your open follow-up tasks (2)"),
        ("a@acme.test", "Your open follow-up tasks (1)")]
    body = digests[0][2]
    assert body.index("sooner") < body.index("later") and "nobody's" not in body


def dsn(status: str, diagnostic: str, original: str = STEP_ID) -> bytes:
    """A delivery status notification for lead@example.com quoting ``original``."""
    return (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        "To: dana@acme.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Date: Mon, 02 Mar 2026 10:05:00 +0000\r\nMessage-ID: <dsn-1@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/plain\r\n\r\nThis is the mail system.\r\n\r\n"
        "--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; lead@example.com\r\n"
        f"Action: failed\r\nStatus: {status}\r\nDiagnostic-Code: {diagnostic}\r\n\r\n"
        "--b1\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: dana@acme.example\r\nTo: lead@example.com\r\nMessage-ID: <{original}>\r\n"
        "Subject: Your free report\r\n\r\nHere it is.\r\n--b1--\r\n"
    ).encode()


# --- reply intent ---------------------------------------------------------------------------


def test_an_interested_reply_gives_the_owner_a_task_due_now_and_marks_the_copy(
        world: World) -> None:
    # Given a lead who got the first step
    sent_step(world, "lead@example.com")
    # When it answers that it wants a call
    assert world.inbound.handle(raw(mail("Yes, interested! Can we set up a call on Thursday?")))
    # Then the sequence stopped, the owner has a task due at once, and the copy is marked
    assert statuses(world, "lead@example.com") == {"seq": "replied"}
    (recorded,) = world.store.inbound.values()
    assert (recorded["cls"], recorded["subclass"]) == ("human", "interested")
    [task] = [t for t in world.store.touches if t.kind == "task"]
    assert (task.task_kind, task.owner, task.due_at) == ("interested", "rep@acme.example",
                                                          world.clock.now())
    assert task.task_text == "Answer lead@example.com: interested"
    assert world.store.notes[0].subject.startswith("[interested] Reply from lead@example.com")


def test_reclassify_lifts_a_wrong_unsubscribe_restores_and_acts_anew(world: World) -> None:
    # Given a reply read as an unsubscribe: suppressed, the sequence closed
    sent_step(world, "lead@example.com")
    assert world.inbound.handle(raw(mail("Please remove me from your list.")))
    assert world.store.suppression_for("lead@example.com") == "unsubscribed"
    assert statuses(world, "lead@example.com") == {"seq": "unsubscribed"}
    (recorded,) = world.store.inbound.values()
    # When a person corrects it to human/interested
    done = world.reclassify(recorded["id"], "human/interested", "dana@acme.example")
    # Then the suppression is lifted, the enrolment went back to active before the human
    # reply ended it as replied, the interested task is written and the correction recorded
    assert (done.old, done.new, done.changed) == ("unsubscribe", "human/interested", True)
    assert "suppression (unsubscribed) lifted" in done.undone
    assert "seq unsubscribed -> active" in done.undone
    assert world.store.suppression_for("lead@example.com") is None
    assert statuses(world, "lead@example.com") == {"seq": "replied"}
    assert [(o, n) for _, o, n, _ in world.store.status_changes][-3:] == [
        ("active", "unsubscribed"), ("unsubscribed", "active"), ("active", "replied")]
    assert [t.task_kind for t in world.store.touches if t.kind == "task"] == ["interested"]
    [fix] = world.store.reclassifications
    assert (fix.old_class, fix.new_class, fix.new_subclass, fix.by) == (
        "unsubscribe", "human", "interested", "dana@acme.example")
    # and again to the same class is a no-op; an unknown class is refused
    assert world.reclassify(recorded["id"], "human/interested", "x").changed is False
    with pytest.raises(UserError, match="unknown class 'spam'"):
        world.reclassify(recorded["id"], "spam", "x")


def test_reclassify_puts_a_wrong_replied_back_to_the_status_it_had(world: World) -> None:
    # Given a reply read as a person's, which ended the sequence as replied
    sent_step(world, "lead@example.com")
    assert world.inbound.handle(raw(mail("Thanks, call me on Monday.")))
    assert statuses(world, "lead@example.com") == {"seq": "replied"}
    (recorded,) = world.store.inbound.values()
    world.clock.advance(minutes=1)
    # When it is corrected to an automatic reply
    done = world.reclassify(recorded["id"], "auto_reply/autoresponder", "dana@acme.example")
    # Then the enrolment is open again with a next due time, and nothing is suppressed
    assert "seq replied -> active" in done.undone
    [row] = world.store.enrollments
    assert row.status in ("active", "waiting") and row.next_due_at is not None
    assert row.next_due_at >= world.clock.now()
    assert world.store.suppression_for("lead@example.com") is None
