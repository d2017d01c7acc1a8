"""`nurture report`: per campaign and step, what was sent and what came back.

Definitions (also in the README):

- ``sent``: emails of the step handed to the server and accepted (or handed over just before
  a crash, so they may have gone out).
- ``replied`` / ``auto_replied``: mails of the step that got at least one human reply / one
  automatic reply, found from the thread headers (the step answered, not the last one sent).
  Two replies to one mail count once, so ``reply_rate = replied / sent`` (4 decimals, 0 when
  nothing was sent) never exceeds 1. An out-of-office is never a reply.
- ``bounced``: mails of the step that bounced, by kind: ``hard``, ``soft``, ``policy`` (a
  delivery report matched to the mail) and ``smtp`` (refused at sending time).
- ``unsubscribed``: enrolments that ended ``unsubscribed``, counted at the step whose mail the
  unsubscribe or complaint answered, else at the last mail sent before it.
- ``completed``: enrolments that ended ``completed``, counted at the last step that touched the
  lead (an email sent or a task created); skipped steps do not count.
- ``replies_by_touch``: human replies by the position of the answered email among the emails
  that lead got in that campaign (1 = the first email).
- Funnel: ``enrolled`` (enrolments), ``touched`` (got at least one email or task), ``replied``
  (a human reply to any of its mails), ``completed``, ``newsletter`` (completed and joined the
  campaign's ``on_finish``, e.g. the newsletter).
- ``intents``: mails of the step answered by a person, by the reply's intent (a mail answered
  twice with two intents counts under each); ``positive_rate = intents.interested / sent``
  per step and per campaign (issue 14).
- ``median_hours_to_first_reply``: per enrolment that replied, from its first email to the
  first human reply; the median, in hours.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.app import App
from worker.config import Settings
from worker.errors import UserError
from worker.usecases.campaign_report import build_report


def report(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    data = build_report(app, args.campaign)
    if args.html:
        from worker.adapters.report_html import write_html
        path = Path(args.html)
        try:
            write_html(data, path, generated_at=app.clock.now())
        except OSError as exc:
            raise UserError(f"{args.html}: cannot write: {exc.strerror or exc}") from None
        if not args.json:
            print(f"report written to {path}")
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=False))
    elif not args.html:
        print_report(data)
    return 0


# --- the terminal ---------------------------------------------------------------------------------

def _hours(value: float | None) -> str:
    if value is None:
        return "no replies yet"
    if value < 48:
        return f"{value:.1f} hours"
    return f"{value / 24:.1f} days"


def print_report(data: dict[str, Any], console: Any = None) -> None:
    """Rich tables, one per campaign."""
    from rich.console import Console
    from rich.table import Table
    out = console or Console(width=None if _tty() else 132)
    if not data["campaigns"]:
        out.print("No campaigns loaded and nothing sent yet.")
        return
    for c in data["campaigns"]:
        title = c["campaign"] + (f" - {c['name']}" if c["name"] else "") + \
            (f" ({c['kind']})" if c["kind"] else " (not loaded)")
        f = c["funnel"]
        table = Table(title=title, title_justify="left", show_footer=True)
        totals = c["totals"]
        columns = [("step", "total"), ("kind", ""), ("sent", totals["sent"]),
                   ("replied", totals["replied"]),
                   ("rate", f"{totals['reply_rate']:.1%}"),
                   ("auto-replies", totals["auto_replied"]), ("bounced", totals["bounced"]),
                   ("unsubscribed", totals["unsubscribed"]), ("completed", totals["completed"]),
                   ("open tasks", totals["open_tasks"])]
        for i, (name, foot) in enumerate(columns):
            table.add_column(name, str(foot), justify="left" if i < 2 else "right")
        for s in c["steps"]:
            kinds = ", ".join(f"{k} {n}" for k, n in s["bounces"].items() if n)
            table.add_row(s["step"], s["kind"], str(s["sent"]), str(s["replied"]),
                          f"{s['reply_rate']:.1%}" if s["sent"] else "-", str(s["auto_replied"]),
                          f"{s['bounced']}" + (f" ({kinds})" if kinds else ""),
                          str(s["unsubscribed"]), str(s["completed"]),
                          str(s["open_tasks"]) if s["kind"] == "task" else "-")
        out.print(table)
        touch = ", ".join(f"#{k}: {n}" for k, n in c["replies_by_touch"].items()) or "none"
        moved = f"{f['newsletter']} moved to {c['on_finish']}" if c["on_finish"] else \
            "no on_finish"
        out.print(f"  enrolled {f['enrolled']}, touched {f['touched']}, replied {f['replied']}, "
                  f"completed {f['completed']} ({moved})")
        out.print(f"  replies by touch number: {touch}")
        said = ", ".join(f"{k} {n}" for k, n in totals["intents"].items() if n) or "none"
        out.print(f"  replies by intent: {said}; positive reply rate "
                  f"{totals['positive_rate']:.1%}")
        out.print(f"  median time to first reply: {_hours(c['median_hours_to_first_reply'])}")
        out.print("")


def _tty() -> bool:
    return sys.stdout.isatty()
