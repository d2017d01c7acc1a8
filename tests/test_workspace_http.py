"""The workspace's HTTP contract without a browser: on by default, off with
``app.enabled = false``, signed-out visits go to the login page, the cookie's flags."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.browserkit import links_in_outbox
from tests.httpkit import start_worker

PRE = re.compile(r'name="csrf" value="([0-9a-f]+)"')


async def test_app_enabled_false_turns_the_workspace_off(tmp_path: Path) -> None:
    worker = await start_worker(tmp_path, None, APP__ENABLED="false")
    try:
        assert (await worker.client.get("/app/login")).status_code == 404
        assert (await worker.client.get("/healthz")).status_code == 200
    finally:
        assert await worker.stop() == 0


async def test_sign_in_cookie_and_rate_limit(tmp_path: Path) -> None:
    worker = await start_worker(tmp_path, None, TEAM__REPS="rep1@acme.example",
                                APP__SESSION_DAYS="3")
    client, outbox = worker.client, tmp_path / "var" / "outbox"
    try:
        first = await client.get("/app/", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/app/login"
        form = await client.get("/app/login")
        token = PRE.search(form.text).group(1)  # type: ignore[union-attr]
        assert (await client.post("/app/login", data={"email": "rep1@acme.example"})
                ).status_code == 403  # no CSRF token
        answers = [await client.post("/app/login", data={"email": addr, "csrf": token})
                   for addr in ("rep1@acme.example", "nobody@else.example")]
        assert answers[0].text == answers[1].text  # the same page for a stranger
        for _ in range(10):
            await client.post("/app/login", data={"email": "rep1@acme.example",
                                                  "csrf": token})
        async with asyncio.timeout(10):
            while not links_in_outbox(outbox, "rep1@acme.example"):
                await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        links = links_in_outbox(outbox, "rep1@acme.example")
        assert len(links) == 5  # limited per address
        opened = await client.get(links[0],
                                  follow_redirects=False)
        assert opened.status_code == 303 and opened.headers["location"] == "/app/"
        cookie = opened.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=lax" in cookie and "secure" not in cookie
        assert f"max-age={3 * 86400}" in cookie
    finally:
        assert await worker.stop() == 0
