"""The workspace (issue 17) in a real browser against `nurture run` on the embedded
default: real sends into the Maildir outbox, a real reply through the Maildir inbox,
sign-in by the mailed link, and axe-core on every page."""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import shutil
from collections.abc import AsyncIterator
from datetime import datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.browserkit import (
    campaign_shown,
    launch_browser,
    links_in_outbox,
    mailed_link,
    serious_violations,
    sign_in,
)
from tests.httpkit import AUTH, Worker, lead_show, start_worker
from tests.workspace import email_template, write_campaign
from worker.adapters.db import models as m

REP1, REP2, BOSS = "rep1@acme.example", "rep2@acme.example", "boss@acme.example"
EVIL_NAME = "<img src=x onerror=alert(1)>"
EVIL_COMPANY = "<script>alert(2)</script>"
CALLS = """
    name = "Calls"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"

    [[step]]
    id = "intro"
    wait = "0"
    window = false
    template = "01-intro.md"

    [[step]]
    id = "call"
    wait = "0"
    window = false
    task = "Call {{ lead.first_name }} about the report"
"""
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launch_browser() as chromium:
        yield chromium


@pytest.fixture
async def team(tmp_path: Path) -> AsyncIterator[tuple[Worker, dict[str, int], Path]]:
    write_campaign(tmp_path / "campaigns", "calls", CALLS, {
        "01-intro.md": email_template("Your report", "Hello. See https://acme.example/r")})
    worker = await start_worker(tmp_path, None, TEAM__REPS=f"{REP1},{REP2}",
                                TEAM__MANAGERS=BOSS)
    ids: dict[str, int] = {}
    for addr, first, company, owner in [
            ("alice@client.example", "Alice", "Client", REP1),
            ("bob@other.example", "Bob", "Other", REP2),
            ("eve@evil.example", EVIL_NAME, EVIL_COMPANY, REP1)]:
        answer = await worker.client.post("/api/leads", headers=AUTH, json={
            "email": addr, "first_name": first, "company": company, "owner": owner,
            "campaign": "calls"})
        assert answer.status_code in (200, 201), answer.text
        ids[addr] = answer.json()["id"]
    outbox = tmp_path / "var" / "outbox"
    await until(lambda: open_tasks(worker) == 3)
    await reply(tmp_path, outbox, worker.clock.now(), "alice@client.example",
                "Yes, I am interested, call me. My calendar: http://evil.example/track")
    await until(lambda: human_replies(worker) == 1)
    try:
        yield worker, ids, outbox
    finally:
        assert await worker.stop() == 0


def open_tasks(worker: Worker) -> int:
    with worker.app.db.session() as s:
        return len(s.scalars(select(m.Touch).where(m.Touch.kind == "task",
                                                   m.Touch.state == "open")).all())


def human_replies(worker: Worker) -> int:
    with worker.app.db.session() as s:
        return len(s.scalars(select(m.Inbound).where(m.Inbound.cls == "human")).all())


async def until(check: Any) -> None:
    async with asyncio.timeout(20):
        while not await asyncio.to_thread(check):
            await asyncio.sleep(0.1)


async def reply(tmp: Path, outbox: Path, at: datetime, sender: str, text: str) -> None:
    """The lead answers the mail it got, into the watched Maildir."""
    for path in (outbox / "new").iterdir():
        sent = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if sender in str(sent["To"]):
            break
    else:
        raise AssertionError(f"no mail to {sender}")
    data = (f"From: Alice <{sender}>\r\nTo: dana@acme.example\r\nSubject: Re: {sent['Subject']}"
            f"\r\nMessage-ID: <reply.1@client.example>\r\nIn-Reply-To: {sent['Message-ID']}"
            f"\r\nDate: {format_datetime(at)}\r\nContent-Type: text/plain\r\n\r\n"
            f"{text}\r\n").encode()
    inbox = tmp / "var" / "inbox"
    (inbox / "tmp").mkdir(parents=True, exist_ok=True)
    (inbox / "new").mkdir(parents=True, exist_ok=True)
    (inbox / "tmp" / "reply1").write_bytes(data)
    # the Maildir's arrival time is the file's: the test's clock, not the machine's
    os.utime(inbox / "tmp" / "reply1", (at.timestamp(), at.timestamp()))
    os.rename(inbox / "tmp" / "reply1", inbox / "new" / "reply1")


async def shot(page: Any, name: str, tmp: Path) -> None:
    """A full-page screenshot kept as a test artefact (and in docs/img/ when asked)."""
    folder = tmp / "artefacts"
    folder.mkdir(exist_ok=True)
    await page.screenshot(path=str(folder / f"{name}.png"), full_page=True)
    if os.environ.get("NURTURE_DOCS_SCREENSHOTS"):
        shutil.copy(folder / f"{name}.png", REPO / "docs" / "img" / f"workspace-{name}.png")


async def test_a_rep_works_the_day_and_a_manager_sees_the_team(
        team: tuple[Worker, dict[str, int], Path], browser: Any, tmp_path: Path) -> None:
    worker, ids, outbox = team
    alerts: list[str] = []
    violations: dict[str, list[str]] = {}

    async def check(page: Any, name: str) -> None:
        await shot(page, name, tmp_path)
        violations[name] = await serious_violations(page)

    rep1, page1 = await sign_in(browser, worker.base_url, outbox, REP1)
    page1.on("dialog", lambda d: alerts.append(d.message))
    today = await page1.inner_text("main")
    assert "Yes, I am interested" in today and "intro" in today  # the reply, the step answered
    assert "Alice" in today and "Bob" not in today
    assert EVIL_NAME in today  # shown as text
    await check(page1, "today-rep1")

    # the lead with HTML in its fields: text, no element, no script run
    await page1.goto(f"/app/leads/{ids['eve@evil.example']}")
    body = await page1.inner_text("main")
    assert EVIL_NAME in body and EVIL_COMPANY in body
    assert await page1.locator("main img").count() == 0
    assert await page1.locator("main script").count() == 0
    await check(page1, "lead-html-fields")

    # the replying lead: its timeline holds the reply's text, its link shown, not followed
    await page1.goto(f"/app/leads/{ids['alice@client.example']}")
    body = await page1.inner_text("main")
    assert "http://evil.example/track" in body and "mail in: human" in body
    assert await page1.locator("a[href*='evil.example']").count() == 0
    await check(page1, "lead")

    # Done with a note closes the task, and `lead show` says who did it
    await page1.goto("/app/")
    card = page1.locator("li.card", has_text="Call Alice")
    await card.locator("input[name=note]").fill("left a voicemail")
    await card.locator("button", has_text="Done").click()
    await page1.wait_for_selector("text=done.")
    assert await page1.locator("li.card", has_text="Call Alice").count() == 0
    shown = await asyncio.to_thread(lead_show, worker.app, "alice@client.example")
    assert {"action": "task done", "by": REP1}.items() <= shown["actions"][0].items()
    task = [t for e in shown["enrollments"] for t in e["touches"] if t["kind"] == "task"][0]
    assert task["state"] == "done" and task["note"] == "left a voicemail"

    # a colleague's lead is 404, like one that does not exist
    answer = await page1.goto(f"/app/leads/{ids['bob@other.example']}")
    assert answer is not None and answer.status == 404
    # a POST without its CSRF token is 403 (the session cookie alone is not enough)
    answer = await page1.request.post(f"/app/leads/{ids['alice@client.example']}/action",
                                      form={"action": "pause"})
    assert answer.status == 403
    headers = (await page1.goto("/app/leads")).headers  # type: ignore[union-attr]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["referrer-policy"] == "no-referrer"
    await check(page1, "leads")
    await page1.goto("/app/campaigns")
    await check(page1, "campaigns")
    await page1.goto("/app/campaigns/calls")
    await campaign_shown(page1)
    assert "Call Sam about the report" in await page1.inner_text("main")  # sample lead
    await check(page1, "campaign")
    answer = await page1.goto("/app/team")
    assert answer is not None and answer.status == 404  # reps do not see the Team page

    # the second rep sees only Bob
    rep2, page2 = await sign_in(browser, worker.base_url, outbox, REP2)
    today = await page2.inner_text("main")
    assert "Bob" in today and "Alice" not in today and "No reply is waiting" in today
    await check(page2, "today-rep2")

    # the manager sees everyone's, and the team
    boss, page3 = await sign_in(browser, worker.base_url, outbox, BOSS)
    today = await page3.inner_text("main")
    assert "Bob" in today and EVIL_NAME in today and "Yes, I am interested" in today
    await check(page3, "today-manager")
    await page3.goto("/app/team")
    rows = {await r.locator("td").first.inner_text(): await r.inner_text()
            for r in await page3.locator("tbody tr").all()}
    # rep1: Eve's call and the owner task of Alice's "interested" reply (reply intent,
    # issue 14) open, Alice's reply waiting, her call done after the reply
    assert rows[REP1].split("\t")[1:4] == ["2", "0", "1"] and rows[REP1].endswith(" h")
    assert rows[REP2].split("\t")[1:4] == ["1", "0", "0"] and rows[REP2].endswith("-")
    await check(page3, "team")
    await page3.goto(f"/app/leads/{ids['bob@other.example']}")
    assert "bob@other.example" in await page3.inner_text("main")

    # sign out ends the session
    await page3.click("text=Sign out")
    await page3.goto("/app/")
    assert page3.url.endswith("/app/login")
    await check(page3, "login")
    for context in (rep1, rep2, boss):
        await context.close()
    assert alerts == []
    assert violations == {name: [] for name in violations}, violations


async def test_a_used_or_expired_link_is_refused(
        team: tuple[Worker, dict[str, int], Path], browser: Any, tmp_path: Path) -> None:
    worker, _, outbox = team
    context, page = await sign_in(browser, worker.base_url, outbox, REP1)
    used = (await asyncio.to_thread(links_in_outbox, outbox, REP1))[-1]
    fresh = await browser.new_context()
    again = await fresh.new_page()
    answer = await again.goto(used)
    assert answer is not None and answer.status == 400
    assert "cannot be used" in await again.inner_text("main")
    await shot(again, "link-refused", tmp_path)

    # a link older than 15 minutes
    await again.goto(worker.base_url + "/app/login")
    await again.fill("#email", REP2)
    await again.click("text=Mail me a sign-in link")
    await again.wait_for_selector("text=a sign-in link is on its way")
    link = await mailed_link(outbox, REP2, 0)
    worker.clock.advance(minutes=16)
    answer = await again.goto(link)
    assert answer is not None and answer.status == 400
    # an address outside the team gets the same page, and no mail
    await again.goto(worker.base_url + "/app/login")
    await again.fill("#email", "stranger@else.example")
    await again.click("text=Mail me a sign-in link")
    await again.wait_for_selector("text=a sign-in link is on its way")
    await asyncio.sleep(0.5)
    assert links_in_outbox(outbox, "stranger@else.example") == []
    await fresh.close()
    await context.close()


async def test_a_rep_reclassifies_a_reply_from_the_lead_page(
        team: tuple[Worker, dict[str, int], Path], browser: Any, tmp_path: Path) -> None:
    # Given Alice's reply, read as human/interested, on her owner's Lead page
    worker, ids, outbox = team
    alice = ids["alice@client.example"]
    rep1, page = await sign_in(browser, worker.base_url, outbox, REP1)
    await page.goto(f"/app/leads/{alice}")
    with worker.app.db.session() as s:
        inbound_id = s.scalars(select(m.Inbound.id)).one()
    assert await page.input_value(f"#target-{inbound_id}") == "human/interested"
    # When the rep corrects it to human/not_now with the row's form
    await page.select_option(f"#target-{inbound_id}", "human/not_now")
    await page.click(f"form[action='/app/replies/{inbound_id}/reclassify'] button")
    # Then the page says what was done, the row shows the new class, the timeline who did it
    main = await page.inner_text("main")
    assert f"message #{inbound_id}: human/interested -> human/not_now" in main
    assert await page.input_value(f"#target-{inbound_id}") == "human/not_now"
    assert f"done by {REP1}" in main
    await shot(page, "lead-reclassified", tmp_path)
    assert await serious_violations(page) == []
    # and the correction is recorded with the signed-in rep as who, shown by lead show
    shown = await asyncio.to_thread(lead_show, worker.app, "alice@client.example")
    [fix] = shown["reclassifications"]
    assert (fix["old"], fix["new"], fix["by"]) == ("human/interested", "human/not_now", REP1)
    # a rep who does not own the lead gets 404, as for a lead that does not exist
    rep2, page2 = await sign_in(browser, worker.base_url, outbox, REP2)
    await page2.goto("/app/")
    token = await page2.locator("input[name=csrf]").first.input_value()
    answer = await page2.request.post(f"/app/replies/{inbound_id}/reclassify",
                                      form={"target": "bounce/hard", "csrf": token})
    assert answer.status == 404
    for context in (rep1, rep2):
        await context.close()
