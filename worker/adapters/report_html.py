"""`nurture report --html`: one self-contained page (inline CSS and SVG charts, no script, no
external assets) that a marketer can open in a browser or attach to a mail."""

from __future__ import annotations

import html
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from worker.adapters import report_charts

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; color: #1a202c;
       margin: 2rem auto; max-width: 1180px; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; margin-top: 2.5rem; border-bottom: 2px solid #e2e8f0; }
.muted { color: #718096; font-size: .9rem; }
.summary { display: flex; flex-wrap: wrap; gap: .6rem; margin: 1rem 0; padding: 0; }
.summary li { list-style: none; background: #f7fafc; border: 1px solid #e2e8f0;
              border-radius: 6px; padding: .4rem .8rem; }
.summary b { display: block; font-size: 1.2rem; }
table { border-collapse: collapse; width: 100%; font-size: .9rem; margin: 1rem 0; }
th, td { border-bottom: 1px solid #e2e8f0; padding: .35rem .5rem; text-align: right; }
th:first-child, td:first-child, th:nth-child(2), td:nth-child(2) { text-align: left; }
tfoot td { font-weight: bold; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr));
          gap: 1rem; }
.charts figure { margin: 0; }
svg.chart { width: 100%; height: auto; }
"""

COLUMNS = ("step", "kind", "sent", "replied", "reply rate", "auto-replies", "bounced",
           "unsubscribed", "completed", "open tasks")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _row(cells: list[Any], tag: str = "td") -> str:
    return "<tr>" + "".join(f"<{tag}>{_e(c)}</{tag}>" for c in cells) + "</tr>"


def _table(c: dict[str, Any]) -> str:
    body = []
    for s in c["steps"]:
        kinds = ", ".join(f"{k} {n}" for k, n in s["bounces"].items() if n)
        body.append(_row([s["step"], s["kind"], s["sent"], s["replied"],
                          f"{s['reply_rate']:.1%}" if s["sent"] else "-", s["auto_replied"],
                          f"{s['bounced']}" + (f" ({kinds})" if kinds else ""),
                          s["unsubscribed"], s["completed"],
                          s["open_tasks"] if s["kind"] == "task" else "-"]))
    t = c["totals"]
    foot = _row(["total", "", t["sent"], t["replied"], f"{t['reply_rate']:.1%}",
                 t["auto_replied"], t["bounced"], t["unsubscribed"], t["completed"],
                 t["open_tasks"]])
    head = _row(list(COLUMNS), "th")
    return (f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody>"
            f"<tfoot>{foot}</tfoot></table>")


def _summary(c: dict[str, Any]) -> str:
    f = c["funnel"]
    median = c["median_hours_to_first_reply"]
    items = [("enrolled", f["enrolled"]), ("touched", f["touched"]),
             ("replied", f["replied"]), ("completed", f["completed"]),
             (f"moved to {c['on_finish']}" if c["on_finish"] else "moved on", f["newsletter"]),
             ("reply rate", f"{c['totals']['reply_rate']:.1%}"),
             ("median time to first reply",
              "-" if median is None else f"{median:.1f} h"),
             ("open tasks", c["open_tasks"])]
    return '<ul class="summary">' + "".join(
        f"<li><b>{_e(v)}</b>{_e(k)}</li>" for k, v in items) + "</ul>"


def _section(c: dict[str, Any]) -> str:
    title = c["campaign"] + (f" - {c['name']}" if c["name"] else "")
    kind = c["kind"] or "not loaded (folder missing or broken)"
    charts = [("funnel", report_charts.funnel(c["funnel"]), ""),
              ("replies-by-touch", report_charts.replies_by_touch(c["replies_by_touch"]), ""),
              ("reply-rate", report_charts.reply_rate(c["steps"]), ""),
              ("replies-by-intent", report_charts.replies_by_intent(c["steps"]), ""),
              ("per-day", report_charts.per_day(c["per_day"]), "")]
    figures = "".join(f'<figure class="{cls}" data-chart="{name}">{svg}</figure>'
                      for name, svg, cls in charts)
    return (f'<section id="campaign-{_e(c["campaign"])}"><h2>{_e(title)}</h2>'
            f'<p class="muted">{_e(kind)}</p>{_summary(c)}{_table(c)}'
            f'<div class="charts">{figures}</div></section>')


def render_html(data: dict[str, Any], generated_at: datetime) -> str:
    """The whole page as text."""
    sections = "".join(_section(c) for c in data["campaigns"]) or \
        "<p>No campaigns loaded and nothing sent yet.</p>"
    stamp = generated_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<title>Nurture report</title>"
            f"<style>{STYLE}</style></head><body><h1>Nurture report</h1>"
            f"<p class=\"muted\">Generated {_e(stamp)}. A reply is a human answer to a mail "
            "(out-of-office and bounces excluded); reply rate = mails answered / mails sent."
            f"</p>{sections}</body></html>\n")


def write_html(data: dict[str, Any], path: Path, generated_at: datetime) -> None:
    """Write the page atomically (a half-written report is never left behind)."""
    page = render_html(data, generated_at)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(page)
        os.chmod(tmp, 0o644)  # mkstemp's 0600 would surprise whoever shares the file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
