"""The campaign views use-case on a fake report store: the report is read once, then served
while a thread reads it again; a task's text is rendered in the sandbox, never failing."""

from __future__ import annotations

import secrets
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from tests.workspace import email_template, make_app, write_campaign
from worker.adapters.db.queries import ReportRows
from worker.adapters.workspace.auth import SESSION_COOKIE, digest
from worker.domain.model import Lead
from worker.usecases import campaign_views
from worker.usecases.campaign_views import CampaignViews, task_text

CALLS = """
    name = "Calls"
    kind = "sequence"
    sender = "Dana at Acme <dana@acme.example>"
    [[step]]
    id = "intro"
    wait = "0"
    template = "01.md"
    [[step]]
    id = "call"
    wait = "2d"
    task = "Call {{ lead.first_name }}"
"""


class CountingReports:
    """The report's two reads, counted; the second read waits until the test lets it go."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = threading.Event()

    def campaigns_with_data(self) -> list[str]:
        return []

    def report_rows(self, campaigns: Any = None, on_finish: Any = None) -> ReportRows:
        self.reads += 1
        if self.reads > 1:
            assert self.gate.wait(10)
        return ReportRows()

    def lead_by_id(self, lead_id: int) -> Lead | None:
        return None


def test_a_stale_report_is_served_while_it_is_read_again(tmp_path: Path) -> None:
    write_campaign(tmp_path / "campaigns", "calls", CALLS, {"01.md": email_template("Hi")})
    app = make_app(tmp_path)
    db = CountingReports()
    views = CampaignViews(lambda: app.catalog, db, db, app.preview_factory(), app.clock,
                          report_ttl_s=0, report_wait_s=10)
    first = views.page("calls")
    assert first is not None and db.reads == 1
    assert [s.id for s in first.steps] == ["intro", "call"]
    assert first.steps[1].text == "Call Sam" and "Subject: " not in first.steps[0].text
    assert [(step, kind) for _, step, kind in first.calendar] == [("intro", "email"),
                                                                   ("call", "task")]
    second = views.page("calls")  # stale: answered at once, the read runs in a thread
    assert second is not None and second.report == first.report
    db.gate.set()
    for thread in threading.enumerate():
        if thread.name == "report-calls":
            thread.join(10)
    assert db.reads == 2
    assert views.page("nothing") is None


def test_task_text_renders_for_the_lead_and_never_fails() -> None:
    lead = Lead(email="a@b.example", first_name="<b>Ann</b>")
    # raw here: the page's autoescape escapes it
    assert task_text("Call {{ lead.first_name }}", lead) == "Call <b>Ann</b>"
    assert task_text("Ask about {{ lead.fields.missing.deeper }}", lead) == "Ask about "
    assert task_text("Call {{ lead.first_name", lead) == "Call {{ lead.first_name"
    assert task_text("{{ lead.__class__.__mro__ }}", lead) == ""  # the sandbox shows nothing


def test_a_slow_first_report_is_counted_in_the_background_and_the_page_reloads_until_shown(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a campaign whose report takes long to read (as at 100,000 leads)
    write_campaign(tmp_path / "campaigns", "calls", CALLS, {"01.md": email_template("Hi")})
    app = make_app(tmp_path, TEAM__MANAGERS="boss@acme.example")
    gate = threading.Event()
    real = campaign_views.build_report

    def slow(source: Any, only: str | None = None) -> dict[str, Any]:
        assert gate.wait(10)
        return real(source, only)

    monkeypatch.setattr(campaign_views, "build_report", slow)
    client = TestClient(Starlette(routes=[app.workspace_mount()]))
    token = secrets.token_urlsafe(16)
    now = app.clock.now()
    app.workspace_rows.add_session(digest(token), "boss@acme.example", now,
                                   now + timedelta(days=1))
    client.cookies.set(SESSION_COOKIE, token)
    # When a manager opens its page for the first time
    first = client.get("/app/campaigns/calls")
    # Then the page comes at once: the steps, and a note that the figures are being counted,
    # and it reloads itself (no script needed)
    assert first.status_code == 200
    assert 'id="counting"' in first.text and "Call Sam" in first.text
    assert '<meta http-equiv="refresh" content="1">' in first.text
    assert 'class="report"' not in first.text
    # And once the figures are read (and the charts drawn), the page shows them, for good
    gate.set()
    deadline = time.monotonic() + 20
    page = client.get("/app/campaigns/calls")
    while ('id="counting"' in page.text or 'id="drawing"' in page.text) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
        page = client.get("/app/campaigns/calls")
    assert 'class="report"' in page.text and page.text.count("<figure>") == 4
    assert 'http-equiv="refresh"' not in page.text
