"""The campaign page (``/app/campaigns/{slug}``): the report's figures and charts, each step
rendered for the sample lead, the simulated calendar and the problems `nurture check` finds.

The charts are the HTML report's (``worker/report_charts.py``), shown as ``<img>`` with a
``data:`` SVG: an SVG loaded as an image runs nothing, and needs no inline style or script in
the page. Drawing them takes matplotlib tens of milliseconds, so they are drawn in the
background and kept per campaign until its figures change (``usecases/kept.py``): while the
first ones are drawn, or the report's first read is still counting, the page says so and
reloads itself a second later (a ``<meta>`` refresh: no script).
"""

from __future__ import annotations

import base64
import json
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from worker.adapters import report_charts
from worker.adapters.workspace.auth import Person
from worker.adapters.workspace.pages import Pages
from worker.usecases.kept import Kept

# How long a page waits for charts not drawn yet (matplotlib takes tens of milliseconds each).
CHARTS_WAIT_S = 0.03
# The report's table, as `nurture report` prints it.
COLUMNS = ("step", "kind", "sent", "replied", "rate", "auto-replies", "bounced",
           "unsubscribed", "completed", "open tasks")


class CampaignPage:
    """The handler, with the charts kept per campaign until its figures change."""

    def __init__(self, pages: Pages, wait_s: float = CHARTS_WAIT_S) -> None:
        self.pages, self.ports, self.wait_s = pages, pages.ports, wait_s
        self._charts: Kept[list[dict[str, str]]] = Kept("charts")

    async def __call__(self, request: Request, person: Person) -> Response:
        slug = request.path_params["slug"]
        views = self.ports.views
        page = await run_in_threadpool(views.page, slug) if views else None
        if page is None:
            return self.pages.not_found(person)
        report = page.report
        charts = await run_in_threadpool(self.charts, slug, report) if report else []
        return self.pages.render("campaign.html", person, p=page, r=report, columns=COLUMNS,
                                 rows=[_row(s) for s in report.get("steps", [])],
                                 foot=_foot(report["totals"]) if report else [],
                                 charts=charts or [], drawing=charts is None,
                                 refresh=page.counting or charts is None)

    def charts(self, slug: str, report: dict[str, Any]) -> list[dict[str, str]] | None:
        """The four charts of the HTML report, as ``data:`` URIs with a text alternative;
        None while the first ones are being drawn (see ``kept.py``)."""
        key = json.dumps(report, sort_keys=True, default=str)
        return self._charts.get(slug, lambda: _draw(report), self.wait_s, key)


def _draw(report: dict[str, Any]) -> list[dict[str, str]]:
    f, steps = report["funnel"], report["steps"]
    by_touch = report["replies_by_touch"]
    drawn = [
        ("Funnel", report_charts.funnel(f),
         ", ".join(f"{k} {v}" for k, v in f.items())),
        ("Replies by touch number", report_charts.replies_by_touch(by_touch),
         ", ".join(f"#{k}: {v}" for k, v in by_touch.items()) or "no replies yet"),
        ("Reply rate per step", report_charts.reply_rate(steps),
         ", ".join(f"{s['step']} {s['replied']}/{s['sent']}" for s in steps
                   if s["kind"] == "email") or "no email steps"),
        ("Sent and replied per day", report_charts.per_day(report["per_day"]),
         f"{len(report['per_day'])} days with sends or replies")]
    return [{"title": title, "alt": f"{title}: {alt}", "src": _data_uri(svg)}
            for title, svg, alt in drawn]


def _data_uri(svg: str) -> str:
    if "xmlns=" not in svg[:200]:  # an <img> needs the namespace an inline <svg> does not
        svg = svg.replace("<svg", '<svg xmlns="http://www.w3.org/2000/svg"', 1)
    return "data:image/svg+xml;base64," + base64.b64encode(svg.encode()).decode()


def _row(s: dict[str, Any]) -> list[str]:
    kinds = ", ".join(f"{k} {n}" for k, n in s["bounces"].items() if n)
    return [s["step"], s["kind"], str(s["sent"]), str(s["replied"]),
            f"{s['reply_rate']:.1%}" if s["sent"] else "-", str(s["auto_replied"]),
            f"{s['bounced']}" + (f" ({kinds})" if kinds else ""), str(s["unsubscribed"]),
            str(s["completed"]), str(s["open_tasks"]) if s["kind"] == "task" else "-"]


def _foot(t: dict[str, Any]) -> list[str]:
    return ["total", "", str(t["sent"]), str(t["replied"]), f"{t['reply_rate']:.1%}",
            str(t["auto_replied"]), str(t["bounced"]), str(t["unsubscribed"]),
            str(t["completed"]), str(t["open_tasks"])]
