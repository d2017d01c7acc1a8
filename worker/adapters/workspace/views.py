"""Plain data for the templates: times in a zone, "how long ago", a lead's timeline."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str | None) -> ZoneInfo:
    """The lead's zone, UTC when it has none or an unknown one."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(at: datetime | None, tz: str | None) -> str:
    """``2026-12-03 09:00 Europe/Paris``, or ``-``."""
    if at is None:
        return "-"
    z = zone(tz)
    return f"{at.astimezone(z):%Y-%m-%d %H:%M} {z.key}"


def ago(at: datetime | None, now: datetime) -> str:
    """``5 min ago``, ``3 h ago``, ``2 d ago``."""
    if at is None:
        return "-"
    s = max(0, int((now - at).total_seconds()))
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def timeline(data: dict[str, Any], tz: str | None,
             texts: dict[int, str] | None = None) -> list[dict[str, str]]:
    """Every dated thing about a lead, oldest first: (when, what, where, detail).
    ``texts``: per touch id, a sent mail's text or a task's text rendered for the lead."""
    texts = texts or {}
    campaigns = {e.id: e.campaign for e in data["enrollments"]}
    steps = {t.id: f"{t.campaign} / {t.step_id}" for t in data["touches"]}
    items: list[tuple[datetime, int, str, str, str]] = []
    for c in data["status_changes"]:
        items.append((c.at, 0, "status", campaigns.get(c.enrollment_id, "-"),
                      f"{c.old or 'new'} -> {c.new}" + (f" ({c.reason})" if c.reason else "")))
    for t in data["touches"]:
        where = f"{t.campaign} / {t.step_id}"
        if t.kind == "task":
            items.append((t.created_at, 1, f"task {t.task_kind or ''}".strip(), where,
                          f"#{t.id} for {t.owner or 'no owner'}: "
                          f"{texts.get(t.id, t.task_text or '')}"))
            if t.done_at:
                items.append((t.done_at, 1, "task done", where,
                              f"#{t.id}" + (f": {t.note}" if t.note else "")))
        elif t.accepted_at or t.handed_at:
            text = texts.get(t.id)
            # Not stored at send time: rendered again now from the campaign files.
            items.append((t.accepted_at or t.handed_at, 1, "email sent", where,
                          f"\"{t.subject or ''}\"" + (f"\n\n[text as rendered now]\n{text}"
                                                      if text else "")))
        else:
            items.append((t.planned_at or t.created_at, 1, f"email {t.state}", where,
                          t.note or t.subject or ""))
    for i in data["inbound"]:
        kind = i.cls + (f"/{i.subclass}" if i.subclass else "")
        detail = f"action: {i.action or 'none'}"
        if i.subject:
            detail += f"; \"{i.subject}\""
        if i.excerpt:
            detail += f"\n{i.excerpt}"
        items.append((i.received_at, 3, f"mail in: {kind}",
                      steps.get(i.touch_id, "-") if i.touch_id else "-", detail))
    for ev in data["events"]:
        fields = ", ".join(f"{k}={v}" for k, v in (ev.fields or {}).items())
        items.append((ev.at, 4, f"event {ev.type}", "-", fields))
    for a in data["actions"]:
        items.append((a.at, 5, a.action, "-",
                      (f"{a.detail}; " if a.detail else "") + f"done by {a.actor}"))
    items.sort(key=lambda x: (x[0], x[1]))
    return [{"at": local(at, tz), "what": what, "where": where, "detail": detail}
            for at, _, what, where, detail in items]
