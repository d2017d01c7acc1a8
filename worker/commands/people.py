"""One person's data: `lead show`, `tasks` (for reps), and the data-rights commands `export`
and `forget`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from worker.app import App
from worker.config import Settings
from worker.domain.leads import normalize_email, printable
from worker.domain.model import OPEN_STATUSES
from worker.errors import NotFound, UserError
from worker.ports import EnrollmentRow
from worker.usecases.reclassify import label

OPEN = {s.value for s in OPEN_STATUSES}
UTC_ZONE = ZoneInfo("UTC")


def _app(settings: Callable[[], Settings]) -> App:
    app = App(settings())
    app.db.check_schema()
    return app


def _iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def zone_of(name: str | None) -> ZoneInfo:
    """The lead's zone, else UTC (also for a zone name the system does not know)."""
    try:
        return ZoneInfo(name) if name else UTC_ZONE
    except (ZoneInfoNotFoundError, ValueError):
        return UTC_ZONE


def local(value: datetime | None, tz: ZoneInfo) -> str:
    """``2026-03-02 09:00 EST``: a time in the lead's zone; ``-`` for nothing."""
    if value is None:
        return "-"
    moment = value.astimezone(tz)
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"


def _console() -> Any:
    from rich.console import Console
    return Console(width=None if sys.stdout.isatty() else 140, highlight=False)


def safe_text(value: str, style: str = "") -> Any:
    """Rich text of stored data with control characters shown as escapes: a name or an
    inbound subject holding ESC sequences must not act on the operator's terminal."""
    from rich.text import Text
    return Text(printable(value), style=style)


# --- lead show ----------------------------------------------------------------------------------

def _next_step(app: App, row: EnrollmentRow, touches: list[Any]) -> str | None:
    camp = app.catalog.campaigns.get(row.campaign)
    if camp is None or row.status not in OPEN:
        return None
    if camp.kind == "newsletter":
        done = {t.step_id for t in touches if t.state in ("accepted", "handed_over", "skipped")}
        joined = row.enrolled_at.date()
        return next((i.id for i in camp.issues if i.id not in done and i.send_on >= joined), None)
    return camp.steps[row.next_step].id if row.next_step < len(camp.steps) else None


def _sent_at(t: Any) -> datetime | None:
    if t.kind == "task":
        task_at: datetime | None = t.created_at
        return task_at
    # Sent means accepted: a mail handed over without an answer yet (or in doubt) is not.
    at: datetime | None = t.accepted_at if t.state == "accepted" else None
    return at


def _touch(t: Any) -> dict[str, Any]:
    return {"id": t.id, "step": t.step_id, "kind": t.kind, "state": t.state,
            "sent_at": _iso(_sent_at(t)), "message_id": t.message_id,
            "touch_number": t.touch_number, "subject": t.subject, "task_kind": t.task_kind,
            "task": t.task_text, "owner": t.owner, "due_at": _iso(t.due_at),
            "done_at": _iso(t.done_at), "note": t.note, "smtp_code": t.smtp_code,
            "smtp_response": t.smtp_response,
            "planned_at": _iso(t.planned_at), "created_at": _iso(t.created_at)}


def lead_view(app: App, lead: Any, hist: dict[str, list[Any]],
              suppressed: str | None) -> dict[str, Any]:
    """What `lead show --json` prints."""
    touches: dict[int, list[Any]] = {}
    by_id = {t.id: t for t in hist["touches"]}
    for t in hist["touches"]:
        touches.setdefault(t.enrollment_id, []).append(t)
    campaigns = {e.id: e.campaign for e in hist["enrollments"]}
    enrollments = [{
        "id": e.id, "campaign": e.campaign, "status": e.status, "status_reason": e.status_reason,
        "next_step": _next_step(app, e, touches.get(e.id, [])), "next_due_at": _iso(e.next_due_at),
        "enrolled_at": _iso(e.enrolled_at), "last_touch_at": _iso(e.last_touch_at),
        "touches": [_touch(t) for t in touches.get(e.id, [])]} for e in hist["enrollments"]]
    inbound = []
    for i in hist["inbound"]:
        answered = by_id.get(i.touch_id) if i.touch_id else None
        inbound.append({
            "id": i.id, "received_at": _iso(i.received_at), "class": i.cls,
            "subclass": i.subclass, "matched_by": i.matched_by, "action": i.action,
            # a person's reply: its intent (the subclass of class human)
            "intent": i.subclass if i.cls == "human" else None,
            "reason": i.reason, "subject": i.subject, "return_date": _iso(i.return_date),
            "answered": {"campaign": answered.campaign, "step": answered.step_id,
                         "touch_number": answered.touch_number} if answered else None})
    columns = {k: v for k, v in app.people.columns(lead).items() if k not in ("id", "updated_at")}
    return {**columns, "suppressed": suppressed, "enrollments": enrollments, "inbound": inbound,
            "status_changes": [{"campaign": campaigns.get(c.enrollment_id), "old": c.old,
                                "new": c.new, "reason": c.reason, "at": _iso(c.at)}
                               for c in hist["status_changes"]],
            "events": [{"type": ev.type, "fields": ev.fields, "at": _iso(ev.at)}
                       for ev in hist["events"]],
            # done from the workspace (issue 17), with who did it
            "actions": [{"action": a.action, "detail": a.detail, "by": a.actor, "at": _iso(a.at)}
                        for a in app.workspace_rows.actions_of(lead.id)],
            # a person's correction of a message's class (issue 14)
            "reclassifications": [
                {"inbound_id": r.inbound_id, "old": label(r.old_class, r.old_subclass),
                 "new": label(r.new_class, r.new_subclass), "by": r.by, "at": _iso(r.at),
                 "undone": r.undone, "action": r.action}
                for r in app.reclassifications.reclassifications_of(lead.id)]}


def lead_show(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = _app(settings)
    email = normalize_email(args.email)
    lead = app.db.lead_row(email)
    suppressed = app.db.suppression_for(email)
    if lead is None:
        why = f" (the address is suppressed: {suppressed})" if suppressed else ""
        raise NotFound(f"no lead {email!r}{why}")
    data = lead_view(app, lead, app.db.lead_history(email, lead.id), suppressed)
    if args.json:
        print(json.dumps(data, indent=2, ensure_ascii=False))
    else:
        print_lead(data, zone_of(lead.timezone), _console())
    return 0


def _when(value: str | None, tz: ZoneInfo) -> str:
    return local(datetime.fromisoformat(value), tz) if value else "-"


def _timeline(data: dict[str, Any]) -> list[tuple[str, int, str, str, str]]:
    """(ISO time, order, what, where, detail) for every dated thing about the lead."""
    items: list[tuple[str, int, str, str, str]] = []
    for c in data["status_changes"]:
        change = f"{c['old'] or 'new'} -> {c['new']}"
        # at one instant: an enrolment starts before its first mail, which comes before what
        # it caused (a bounce at SMTP time closes the enrolment in the same second)
        items.append((c["at"], 0 if c["old"] is None else 2, "status", c["campaign"] or "-",
                      change + (f" ({c['reason']})" if c["reason"] else "")))
    for e in data["enrollments"]:
        for t in e["touches"]:
            where = f"{e['campaign']} / {t['step']}"
            if t["kind"] == "task":
                items.append((t["sent_at"], 1, f"task {t['task_kind'] or ''}".strip(), where,
                              f"#{t['id']} for {t['owner'] or 'no owner'}: {t['task']}"))
                if t["done_at"]:
                    items.append((t["done_at"], 1, "task done", where,
                                  f"#{t['id']}" + (f": {t['note']}" if t["note"] else "")))
                continue
            if t["sent_at"]:
                detail = f"email #{t['touch_number']} \"{t['subject'] or ''}\" <{t['message_id']}>"
                items.append((t["sent_at"], 1, "email sent", where, detail))
            else:
                answer = f"{t['smtp_code']} {t['smtp_response'] or ''}" if t["smtp_code"] else None
                detail = t["note"] or answer or t["subject"]
                items.append((t["planned_at"] or t["created_at"], 1, f"email {t['state']}",
                              where, str(detail or "")))
    for i in data["inbound"]:
        kind = i["class"] + (f"/{i['subclass']}" if i["subclass"] else "")
        answered = i["answered"]
        where = (f"{answered['campaign']} / {answered['step']} (touch #"
                 f"{answered['touch_number']})") if answered else "-"
        detail = f"matched by {i['matched_by'] or 'nothing'}; action: {i['action'] or 'none'}"
        if i["subject"]:
            detail += f"; \"{i['subject']}\""
        items.append((i["received_at"], 3, f"mail in #{i['id']}: {kind}", where, detail))
    for ev in data["events"]:
        fields = ", ".join(f"{k}={v}" for k, v in ev["fields"].items())
        items.append((ev["at"], 4, f"event {ev['type']}", "-", fields))
    for a in data.get("actions", []):
        items.append((a["at"], 5, a["action"], "-",
                      (f"{a['detail']}; " if a["detail"] else "") + f"done by {a['by']}"))
    for r in data.get("reclassifications", []):
        items.append((r["at"], 5, f"mail in #{r['inbound_id']} reclassified", "-",
                      f"{r['old']} -> {r['new']} by {r['by']}; undone: {r['undone'] or 'nothing'}"
                      f"; action: {r['action']}"))
    return sorted((x for x in items if x[0]), key=_order)


def _order(item: tuple[Any, ...]) -> tuple[datetime, int]:
    """By time, then kind. Mail in is stamped in whole seconds (IMAP INTERNALDATE): it sorts
    at the end of its second, so a bounce follows the mail it returns within that second."""
    at = datetime.fromisoformat(item[0])
    if item[1] == 3 and at.microsecond == 0:
        at += timedelta(microseconds=999_999)
    return at, item[1]


def print_lead(data: dict[str, Any], tz: ZoneInfo, console: Any) -> None:
    """The lead, its enrolments and a timeline, in the lead's zone."""
    from rich.table import Table
    name = " ".join(x for x in (data["first_name"], data["last_name"]) if x)
    who = ", ".join(x for x in (name, data["title"], data["company"]) if x)
    console.print(safe_text(data["email"] + (f"  {who}" if who else ""), style="bold"))
    console.print(safe_text(f"owner {data['owner'] or '-'} | zone {tz.key} | source "
                            f"{data['source'] or '-'} | consent {_when(data['consent_at'], tz)} "
                            f"| tags {', '.join(data['tags'] or []) or '-'}"))
    fields = {k: v for k, v in (data["fields"] or {}).items() if v is not None and v != ""}
    if fields:
        console.print(safe_text("fields: " + ", ".join(f"{k}={v}" for k, v in fields.items())))
    if data["suppressed"]:
        console.print(safe_text(f"suppressed ({data['suppressed']}): nothing more is sent to "
                                "this address", style="red"))
    table = Table("campaign", "status", "next step", "next due", "enrolled", "why",
                  title="Enrolments", title_justify="left")
    for e in data["enrollments"]:
        table.add_row(*(safe_text(x) for x in (
            e["campaign"], e["status"], e["next_step"] or "-", _when(e["next_due_at"], tz),
            _when(e["enrolled_at"], tz), e["status_reason"] or "")))
    console.print(table)
    timeline = Table("when", "what", "campaign / step", "detail",
                     title=f"Timeline ({tz.key})", title_justify="left")
    for at, _, what, where, detail in _timeline(data):
        timeline.add_row(*(safe_text(x) for x in (_when(at, tz), what, where, detail)))
    console.print(timeline)


# --- tasks --------------------------------------------------------------------------------------

def tasks(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = _app(settings)
    if args.action == "done":
        return _task_done(app, args.id, args.note)
    if args.id is not None:
        raise UserError(f"a task ID goes with `nurture tasks done {args.id}`")
    rows = app.db.open_tasks(args.owner.strip() if args.owner else None)
    items = []
    for t, email, tz in rows:
        camp = app.catalog.campaigns.get(t.campaign)
        step = next((s for s in camp.steps if s.id == t.step_id), None) if camp else None
        items.append({"id": t.id, "owner": t.owner, "due_at": _iso(t.due_at),
                      "kind": t.task_kind or "task", "task": t.task_text, "lead": email,
                      "lead_timezone": tz, "campaign": t.campaign, "step": t.step_id,
                      "created_at": _iso(t.created_at),
                      "blocks_sequence": bool(step and step.wait_for_task)})
    if args.json:
        print(json.dumps({"tasks": items}, indent=2, ensure_ascii=False))
        return 0
    print_tasks(items, args.owner, _console())
    return 0


def _task_done(app: App, task_id: int | None, note: str | None) -> int:
    if task_id is None:
        raise UserError("tasks done: give the task's ID (`nurture tasks` lists them)")
    touch = app.by_hand.complete_task(task_id, note)
    found = app.db.task_row(task_id)
    email = found[1] if found else "?"
    print(printable(f"task {task_id} done: {touch.task_kind or 'task'} for {email} "
                    f"({touch.campaign} / {touch.step_id})"))
    for row in app.db.enrollments_of(touch.lead_id, touch.campaign):
        if row.id == touch.enrollment_id and row.status in OPEN and row.next_due_at:
            camp = app.catalog.campaigns.get(row.campaign)
            step = camp.steps[row.next_step].id if camp and row.next_step < len(camp.steps) \
                else "?"
            lead = app.db.lead_by_id(touch.lead_id)
            tz = zone_of(lead.timezone if lead else None)
            print(f"next: step {step} due {local(row.next_due_at, tz)}")
    return 0


def print_tasks(items: list[dict[str, Any]], owner: str | None, console: Any) -> None:
    """Open tasks, one table per owner, soonest first; times in each lead's zone."""
    from rich.table import Table
    if not items:
        console.print(safe_text(f"No open tasks{' for ' + owner if owner else ''}."))
        return
    groups: dict[str, list[dict[str, Any]]] = {}
    for item in items:
        groups.setdefault(item["owner"] or "(no owner)", []).append(item)
    for who, rows in groups.items():
        table = Table("id", "due (lead's time)", "kind", "lead", "campaign / step", "task",
                      title=safe_text(f"{who}: {len(rows)} open"), title_justify="left")
        for r in rows:
            due = _when(r["due_at"], zone_of(r["lead_timezone"]))
            kind = r["kind"] + (" (sequence waits)" if r["blocks_sequence"] else "")
            table.add_row(*(safe_text(str(x)) for x in (r["id"], due, kind, r["lead"],
                                                   f"{r['campaign']} / {r['step']}", r["task"])))
        console.print(table)
    console.print("Mark one done with `nurture tasks done ID [--note TEXT]`.")


# --- data rights --------------------------------------------------------------------------------

def export(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = _app(settings)
    email = normalize_email(args.email)
    lead = app.db.lead_row(email)
    hist = app.db.lead_history(email, lead.id if lead else None)
    if lead is None and not any(hist.values()):
        raise NotFound(f"nothing is stored about {email!r}")
    data: dict[str, Any] = {
        "email": email, "exported_at": _iso(app.clock.now()),
        "lead": app.people.columns(lead) if lead else None,
        "suppressed": app.db.suppression_for(email)}
    for key, rows in hist.items():
        data[key] = [app.people.columns(r) for r in rows]
    print(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    return 0


def forget(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = _app(settings)
    email = normalize_email(args.email)
    lead = app.db.lead_by_email(email)
    hist = app.db.lead_history(email, lead.id if lead else None)
    # The hash goes in first: a forget interrupted half-way still never mails the address,
    # and running it again finishes the erasure.
    app.db.add_suppression(email, "erased", "forget", keep_address=False)
    scrubbed = app.db.erase_address(email, lead.id if lead else None)
    if lead is not None:
        app.db.delete_lead(lead.id)
    parts = [f"{len(hist['enrollments'])} enrolment(s)", f"{len(hist['touches'])} touch(es)",
             f"{len(hist['events'])} event(s)",
             f"{scrubbed['inbound']} inbound message(s) scrubbed",
             f"{scrubbed['notifications']} notification(s) deleted"]
    what = "lead erased" if lead is not None else "no lead stored"
    print(f"{email}: {what}; {', '.join(parts)}. Only a keyed hash of the address is kept, "
          "so it is never mailed or imported again.")
    print("Note: mail stored outside the database (the reply mailbox, Maildir folders, "
          "backups) is not touched; delete it there if it must go too.", file=sys.stderr)
    return 0
