"""The workspace tests' browser: Debian's Chromium driven by Playwright (no browser is
downloaded), an axe-core check (bundled by axe-playwright-python, offline), sign-in by the
link read from the Maildir outbox, and screenshots kept as test artefacts."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
LINK = re.compile(r"https?://\S+/app/login/[A-Za-z0-9_\-]+")

playwright_api = pytest.importorskip("playwright.async_api")
axe_api = pytest.importorskip("axe_playwright_python.async_playwright")


@contextlib.asynccontextmanager
async def launch_browser() -> AsyncIterator[Any]:
    """Debian's Chromium under Playwright (skips the test without it)."""
    if not CHROMIUM.exists():
        pytest.skip("no /usr/bin/chromium")
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=str(CHROMIUM),
                                            args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            await chromium.close()


def links_in_outbox(outbox: Path, to: str) -> list[str]:
    """Every sign-in link mailed to ``to``, oldest first."""
    found: list[tuple[float, str]] = []
    folder = outbox / "new"
    for path in folder.iterdir() if folder.exists() else []:
        msg = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if to not in str(msg["To"]):
            continue
        body = msg.get_body(("plain",))
        text = body.get_content() if body is not None else ""  # type: ignore[union-attr]
        found += [(path.stat().st_mtime, m) for m in LINK.findall(text)]
    return [link for _, link in sorted(found)]


async def mailed_link(outbox: Path, to: str, before: int) -> str:
    """Wait (bounded) for the sign-in link number ``before + 1`` mailed to ``to``."""
    async with asyncio.timeout(15):
        while True:
            links = await asyncio.to_thread(links_in_outbox, outbox, to)
            if len(links) > before:
                return links[before]
            await asyncio.sleep(0.1)


async def sign_in(browser: Any, base_url: str, outbox: Path, who: str) -> tuple[Any, Any]:
    """A new browser context signed in as ``who`` by the mailed link; (context, page)."""
    context = await browser.new_context(base_url=base_url, viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto("/app/")
    assert page.url.endswith("/app/login")
    before = len(await asyncio.to_thread(links_in_outbox, outbox, who))
    await page.fill("#email", who)
    await page.click("text=Mail me a sign-in link")
    await page.wait_for_selector("text=a sign-in link is on its way")
    link = await mailed_link(outbox, who, before)
    await page.goto(link)
    assert page.url.endswith("/app/"), page.url
    return context, page


async def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page."""
    results = await axe_api.Axe().run(page)
    return [f"{v['id']}: {v['help']}" for v in results.response["violations"]
            if v.get("impact") in ("serious", "critical")]


async def campaign_shown(page: Any, timeout_s: float = 20.0) -> None:
    """Wait until the campaign page shows its figures and charts: a first view may say they
    are being counted or drawn, and reload itself (a <meta> refresh) until they are."""
    async with asyncio.timeout(timeout_s):
        while True:
            with contextlib.suppress(Exception):  # the page may be reloading right now
                await page.wait_for_load_state("load")
                if (await page.locator("h1").count()
                        and not await page.locator("#counting, #drawing").count()):
                    return
            await asyncio.sleep(0.2)
