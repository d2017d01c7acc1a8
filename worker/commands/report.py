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
import statistics
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from worker.adapters.db.queries import ReportRows
from worker.app import App
from worker.config import Settings
from worker.domain.intent import INTENTS
from worker.errors import NotFound, UserError

BOUNCE_KINDS = ("hard", "soft", "policy", "smtp")


def report(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    data = build_report(app, args.campaign)
    if args.html:
        from worker.report_html import write_html
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


# --- the numbers ------------------------------------------------------------------------------

def build_report(app: App, only: str | None = None) -> dict[str, Any]:
    """The report as plain data (what ``--json`` prints)."""
    catalog = app.catalog
    with_data = app.db.campaigns_with_data()
    slugs = sorted(set(catalog.campaigns) | set(with_data))
    if only is not None:
        if only not in slugs:
            if only in catalog.problems:
                catalog.get(only)  # raises NotFound naming the problem
            raise NotFound(f"no campaign {only!r} (known: {', '.join(slugs) or 'none'})")
        slugs = [only]
    on_finish = {slug: c.on_finish for slug, c in catalog.campaigns.items() if c.on_finish}
    rows = app.db.report_rows(None if only is None else slugs, on_finish)
    return {"campaigns": [_campaign(app, slug, rows) for slug in slugs]}


def _rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _step_ids(app: App, slug: str, rows: ReportRows) -> list[tuple[str, str]]:
    """(step id, kind) in campaign order; steps removed from the folder come after."""
    camp = app.catalog.campaigns.get(slug)
    ordered: list[tuple[str, str]] = []
    if camp is not None:
        ordered = [(s.id, s.kind) for s in camp.steps] + [(i.id, "email") for i in camp.issues]
    known = {sid for sid, _ in ordered}
    kinds = {r[1]: r[2] for r in rows.touches if r[0] == slug}
    extra = sorted(((r[2], r[3], r[1]) for r in rows.step_order
                    if r[0] == slug and r[1] not in known), key=lambda x: (x[0], str(x[1])))
    return ordered + [(sid, kinds.get(sid, "email")) for _, _, sid in extra]


def _campaign(app: App, slug: str, rows: ReportRows) -> dict[str, Any]:
    camp = app.catalog.campaigns.get(slug)
    per: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for c, step, kind, state, n in rows.touches:
        if c != slug:
            continue
        if kind == "email" and state == "accepted":  # sent means accepted by the server
            per[step]["sent"] += n
        elif kind == "task" and state in ("open", "done"):
            per[step][f"{state}_tasks"] += n
        if state == "skipped":
            per[step]["skipped"] += n
    for c, step, cls, n in rows.inbound:
        if c == slug:
            per[step][cls] += n
    intents: dict[str, dict[str, int]] = defaultdict(dict)
    for c, step, intent, n in rows.intents:
        if c == slug:  # a reply recorded before intents were read is neutral
            key = intent if intent in INTENTS else "neutral"
            intents[step][key] = intents[step].get(key, 0) + n
    bounced: dict[str, dict[str, set[int]]] = defaultdict(lambda: defaultdict(set))
    for c, step, touch_id, kind in rows.bounces:
        if c == slug:
            bounced[step][kind if kind in BOUNCE_KINDS else "soft"].add(touch_id)
    for c, step, n in rows.completed_at:
        if c == slug:
            per[step]["completed"] += n
    unsubscribed = [r for r in rows.unsubscribed if r[1] == slug]
    for _, _, step in unsubscribed:
        if step is not None:
            per[step]["unsubscribed"] += 1
    steps: list[dict[str, Any]] = []
    for step_id, kind in _step_ids(app, slug, rows):
        p = per.get(step_id, {})
        kinds = bounced.get(step_id, {})
        sent = p.get("sent", 0)
        steps.append({
            "step": step_id, "kind": kind, "sent": sent, "replied": p.get("human", 0),
            "auto_replied": p.get("auto_reply", 0),
            "bounced": len(set[int]().union(*kinds.values())),
            "unsubscribed": p.get("unsubscribed", 0), "completed": p.get("completed", 0),
            "reply_rate": _rate(p.get("human", 0), sent),
            "bounces": {k: len(kinds.get(k, ())) for k in BOUNCE_KINDS},
            "open_tasks": p.get("open_tasks", 0), "done_tasks": p.get("done_tasks", 0),
            "skipped": p.get("skipped", 0),
            "intents": {k: intents.get(step_id, {}).get(k, 0) for k in INTENTS},
            "positive_rate": _rate(intents.get(step_id, {}).get("interested", 0), sent)})
    statuses = {status: n for c, status, n in rows.enrollments if c == slug}
    by_touch = {int(num): n for c, num, n in rows.by_touch if c == slug}
    most = max(by_touch, default=0)
    sent_total = sum(s["sent"] for s in steps)
    replied_steps = sum(s["replied"] for s in steps)
    replied_leads = next((n for c, n in rows.replied if c == slug), 0)
    hours = [(reply - first).total_seconds() / 3600 for c, first, reply in rows.first_reply
             if c == slug and first is not None and reply is not None]
    days: dict[str, dict[str, int]] = defaultdict(lambda: {"sent": 0, "replied": 0})
    for c, day, n in rows.sends_per_day:
        if c == slug:
            days[str(day)[:10]]["sent"] += n
    for c, day, n in rows.replies_per_day:
        if c == slug:
            days[str(day)[:10]]["replied"] += n
    completed = statuses.get("completed", 0)
    return {
        "campaign": slug,
        "name": camp.name if camp else None,
        "kind": camp.kind if camp else None,
        "loaded": camp is not None,
        "steps": steps,
        "replies_by_touch": {str(k): by_touch.get(k, 0) for k in range(1, most + 1)},
        "totals": {"sent": sent_total, "replied": replied_steps,
                   "auto_replied": sum(s["auto_replied"] for s in steps),
                   "bounced": sum(s["bounced"] for s in steps),
                   "unsubscribed": len(unsubscribed), "completed": completed,
                   "reply_rate": _rate(replied_steps, sent_total),
                   "open_tasks": sum(s["open_tasks"] for s in steps),
                   "intents": {k: sum(s["intents"][k] for s in steps) for k in INTENTS},
                   "positive_rate": _rate(sum(s["intents"]["interested"] for s in steps),
                                          sent_total)},
        "funnel": {"enrolled": sum(statuses.values()),
                   "touched": next((n for c, n in rows.touched if c == slug), 0),
                   "replied": replied_leads, "completed": completed,
                   "newsletter": rows.moved.get(slug, 0)},
        "on_finish": camp.on_finish if camp else None,
        "moved_to_newsletter": rows.moved.get(slug, 0),
        "open_tasks": sum(s["open_tasks"] for s in steps),
        "statuses": dict(sorted(statuses.items())),
        "median_hours_to_first_reply": round(statistics.median(hours), 2) if hours else None,
        "per_day": [{"day": d, **days[d]} for d in sorted(days)],
    }


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
