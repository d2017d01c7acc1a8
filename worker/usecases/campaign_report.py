"""The numbers of `nurture report`, per campaign and step, as plain data.

Used by the command (``worker/commands/report.py``, which also holds the definitions) and by
the workspace's campaign page. Moved here as is from the command, so both show the same
figures; the source only needs ``catalog`` and a ``db`` with the two report reads.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from typing import Any, Protocol

from worker.domain.catalog import Catalog
from worker.domain.intent import INTENTS
from worker.errors import NotFound

BOUNCE_KINDS = ("hard", "soft", "policy", "smtp")


class ReportDb(Protocol):
    """The report's reads (``Database``)."""

    def campaigns_with_data(self) -> list[str]: ...
    def report_rows(self, campaigns: Any = None, on_finish: Any = None) -> Any: ...


class ReportSource(Protocol):
    """Where the report reads from: the campaigns and the database (``App``)."""

    @property
    def catalog(self) -> Catalog: ...
    @property
    def db(self) -> ReportDb: ...


# --- the numbers ------------------------------------------------------------------------------

def build_report(app: ReportSource, only: str | None = None) -> dict[str, Any]:
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


def _step_ids(app: ReportSource, slug: str, rows: Any) -> list[tuple[str, str]]:
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


def _campaign(app: ReportSource, slug: str, rows: Any) -> dict[str, Any]:
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
