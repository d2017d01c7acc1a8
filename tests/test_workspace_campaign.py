"""The workspace's campaign page and the lead's rendered timeline (issue 17), in a real
browser against `nurture run`: a real send and a real reply make the report's figures; a
campaign with a bad link and one that does not load show what `nurture check` finds; axe-core
on each page, and no Content-Security-Policy complaint from the browser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.browserkit import campaign_shown, launch_browser, serious_violations, sign_in
from tests.httpkit import AUTH, Worker, start_worker
from tests.test_workspace_browser import CALLS, human_replies, open_tasks, reply, shot, until
from tests.workspace import email_template, write_campaign

REP1, BOSS = "rep1@acme.example", "boss@acme.example"
LAUNCH = """
    name = "Launch"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"

    [[step]]
    id = "hello"
    wait = "0"
    template = "01-hello.md"

    [[step]]
    id = "follow"
    wait = "3d"
    template = "02-follow.md"
"""


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with launch_browser() as chromium:
        yield chromium


@pytest.fixture
async def worker(tmp_path: Path) -> AsyncIterator[Worker]:
    campaigns = tmp_path / "campaigns"
    write_campaign(campaigns, "calls", CALLS, {"01-intro.md": email_template("Your report")})
    write_campaign(campaigns, "launch", LAUNCH, {
        "01-hello.md": email_template("Hi <b>{{ lead.company }}</b>",
                                      "Hello {{ lead.first_name }}, see [our site](htp://acme)."),
        "02-follow.md": email_template("Following up")})
    write_campaign(campaigns, "broken", 'name = "Broken"\nkind = "nonsense"\n', {})
    running = await start_worker(tmp_path, None, TEAM__REPS=REP1, TEAM__MANAGERS=BOSS)
    answer = await running.client.post("/api/leads", headers=AUTH, json={
        "email": "alice@client.example", "first_name": "Alice", "company": "Client",
        "owner": REP1, "campaign": "calls"})
    assert answer.status_code in (200, 201), answer.text
    await until(lambda: open_tasks(running) == 1)
    await reply(tmp_path, tmp_path / "var" / "outbox", running.clock.now(),
                "alice@client.example", "Yes, call me.")
    await until(lambda: human_replies(running) == 1)
    try:
        yield running
    finally:
        assert await running.stop() == 0


async def test_campaign_pages_show_report_steps_calendar_and_problems(
        worker: Worker, browser: Any, tmp_path: Path) -> None:
    context, page = await sign_in(browser, worker.base_url, tmp_path / "var" / "outbox", BOSS)
    complaints: list[str] = []
    page.on("console", lambda m: complaints.append(m.text) if m.type == "error" else None)
    violations: dict[str, list[str]] = {}

    async def check(name: str) -> None:
        await shot(page, name, tmp_path)
        violations[name] = await serious_violations(page)

    answer = await page.goto("/app/campaigns/calls")
    assert answer is not None and answer.status == 200
    assert "img-src 'self' data:" in answer.headers["content-security-policy"]
    await campaign_shown(page)
    # the report: the same figures as `nurture report calls`, one mail sent, one reply
    intro = await page.locator("table.report tbody tr", has_text="intro").inner_text()
    assert intro.split("\t")[:6] == ["intro", "email", "1", "1", "100.0%", "0"]
    charts = page.locator(".charts img")
    assert await charts.count() == 4
    assert all(src.startswith("data:image/svg+xml;base64,")
               for src in [await charts.nth(i).get_attribute("src") for i in range(4)])
    assert await page.evaluate(
        "[...document.querySelectorAll('.charts img')].every(i => i.naturalWidth > 0)")
    steps = await page.locator("ol.steps").inner_text()
    assert "Subject: Your report" in steps and "Hello Sam." in steps  # the sample lead
    assert "Call Sam about the report" in steps  # the task's text, rendered too
    calendar = await page.locator("section[aria-labelledby=calendar] tbody").inner_text()
    assert "\tintro\temail" in calendar and "\tcall\ttask" in calendar
    assert "None found." in await page.locator("section[aria-labelledby=problems]").inner_text()
    await check("campaign-report")

    # a campaign with a bad link: the problem `nurture check` prints; the HTML in the subject
    # (from the template) is text
    await page.goto("/app/campaigns/launch")
    await campaign_shown(page)
    problems = await page.locator("ul.problems").inner_text()
    assert "link 'htp://acme' needs http://, https:// or mailto:" in problems
    steps = await page.locator("ol.steps").inner_text()
    assert "Subject: Hi <b>Example Co</b>" in steps and "Hello Sam, see our site" in steps
    assert await page.locator("ol.steps b").count() == 0
    assert "\tfollow\temail" in await page.locator(
        "section[aria-labelledby=calendar] tbody").inner_text()
    await check("campaign-problems")

    # a campaign that does not load: listed, and its page names the problem
    await page.goto("/app/campaigns")
    await page.click("a[href='/app/campaigns/broken']")
    await campaign_shown(page)
    body = await page.inner_text("main")
    assert "not loaded" in body and "nonsense" in body
    await check("campaign-broken")
    answer = await page.goto("/app/campaigns/nothing-here")
    assert answer is not None and answer.status == 404

    # the lead's timeline: the mail as rendered now for Alice, the task's text rendered
    await page.goto("/app/leads?q=alice")
    await page.click("main tbody a[href^='/app/leads/']")
    timeline = await page.locator("table.timeline").inner_text()
    assert "[text as rendered now]" in timeline and "Hello Alice." in timeline
    assert "Call Alice about the report" in timeline and "{{" not in timeline
    await check("lead-timeline")
    await context.close()
    assert [c for c in complaints if "status of 404" not in c] == []  # no CSP refusal
    assert violations == {name: [] for name in violations}, violations


async def test_app_without_slash_redirects_to_app_slash(worker: Worker) -> None:
    for host in (None, "evil.example"):
        headers = {"host": host} if host else {}
        answer = await worker.client.get("/app", headers=headers, follow_redirects=False)
        assert answer.status_code == 308 and answer.headers["location"] == "/app/"
        assert answer.headers["x-frame-options"] == "DENY"
