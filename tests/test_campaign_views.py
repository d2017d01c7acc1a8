"""The campaign views use-case on a fake report store: the report is read once, then served
while a thread reads it again; a task's text is rendered in the sandbox, never failing."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.workspace import email_template, make_app, write_campaign
from worker.adapters.db.queries import ReportRows
from worker.domain.model import Lead
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
                          report_ttl_s=0)
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
