"""`nurture status`: what ops need at a glance: the due backlog, sends per mailbox against its
caps, when each inbox was last read, which workers are alive, and the suppression list."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import Any

from rich.text import Text

from worker.app import App
from worker.config import redact_url
from worker.mailer import DEFAULT_MAILBOX, Mailboxes


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 1) if then is not None else None


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    s = abs(seconds)
    text = (f"{s:.0f} s" if s < 120 else f"{s / 60:.0f} min" if s < 7200
            else f"{s / 3600:.1f} h" if s < 172800 else f"{s / 86400:.1f} days")
    return f"{text} ago" if seconds >= 0 else f"in {text}"


def _watched(app: App) -> list[str]:
    """The mailboxes this configuration reads replies from."""
    s = app.settings
    if s.inbound.transport == "maildir":
        return [DEFAULT_MAILBOX]
    names = [DEFAULT_MAILBOX] if s.imap.username else []
    return names + [n for n, mb in s.mailboxes.items() if mb.watch and mb.imap.username]


def collect_status(app: App) -> dict[str, Any]:
    """The status as plain data (what ``--json`` prints)."""
    now = app.clock.now()
    db = app.db
    due, oldest = db.due_backlog(now)
    boxes = Mailboxes(app.settings)
    mailboxes = []
    stopped = app.oauth_tokens.stopped()  # issue 15: "paused: bounce rate ...", "signed out: ..."
    for name in boxes.names():
        smtp = boxes.smtp(name)
        hour, day, _ = db.mailbox_usage(name, now)
        mailboxes.append({"name": name, "sent_last_hour": hour, "hourly_cap": smtp.hourly_cap,
                          "sent_last_day": day, "daily_cap": smtp.daily_cap,
                          "at_cap": bool((smtp.hourly_cap and hour >= smtp.hourly_cap)
                                         or (smtp.daily_cap and day >= smtp.daily_cap)),
                          "state": stopped.get(name, "sending")})
    states = {st.mailbox: st for st in db.mailbox_states()}
    inbox = []
    for name in sorted(set(_watched(app)) | set(states)):
        st = states.get(name)
        last = st.last_success_at if st else None
        inbox.append({"mailbox": name, "folder": st.folder if st else None,
                      "last_success_at": last.isoformat() if last else None,
                      "age_s": _age(now, last)})
    within = 3 * app.settings.worker.heartbeat_s
    workers = [{"id": w.id, "host": w.host, "pid": w.pid,
                "started_at": w.started_at.isoformat(),
                "heartbeat_at": w.heartbeat_at.isoformat(),
                "heartbeat_age_s": _age(now, w.heartbeat_at)}
               for w in db.workers_alive(within)]
    catalog = app.catalog
    return {
        "now": now.isoformat(),
        "database": {"backend": db.engine.dialect.name,
                     "url": redact_url(app.settings.database.url)},
        "due": {"count": due, "oldest_due_at": oldest.isoformat() if oldest else None,
                "oldest_overdue_s": _age(now, oldest)},
        "mailboxes": mailboxes,
        "inbox": inbox,
        "workers_alive": len(workers),
        "workers": workers,
        "heartbeat_window_s": within,
        "suppressed": db.suppressed_count(),
        **db.ops_counts(),
        "campaigns": {"loaded": sorted(catalog.campaigns), "broken": sorted(catalog.problems)},
    }


def _cap(used: int, cap: int) -> str:
    return f"{used} / {cap}" if cap else f"{used} (no cap)"


def show_status(app: App, as_json: bool) -> int:
    """Print the status; 0 always (a stopped worker is information, not an error)."""
    app.db.check_schema()
    data = collect_status(app)
    if as_json:
        print(json.dumps(data, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table
    out = Console(width=None if sys.stdout.isatty() else 120, highlight=False)
    db = data["database"]
    one = " (SQLite: one worker process)" if db["backend"] == "sqlite" else ""
    due = data["due"]
    lines = [
        f"database    {db['url']}{one}",
        f"due now     {due['count']} enrolment(s)" + (
            f", oldest due {_ago(due['oldest_overdue_s'])}" if due["count"] else ""),
        f"workers     {data['workers_alive']} alive (heartbeat within "
        f"{data['heartbeat_window_s']:g} s)" + "".join(
            f"\n            {w['id']} heartbeat {_ago(w['heartbeat_age_s'])}"
            for w in data["workers"]),
        f"suppressed  {data['suppressed']} address(es) or domain(s)",
        f"tasks       {data['open_tasks']} open",
        (f"outbox      {data['unsent_notifications']} notification(s) waiting; "
         f"{data['failed_enrollments']} enrolment(s) failed"),
        f"campaigns   {len(data['campaigns']['loaded'])} loaded" + (
            f", broken: {', '.join(data['campaigns']['broken'])} (run `nurture check`)"
            if data["campaigns"]["broken"] else ""),
    ]
    for line in lines:
        out.print(Text(line))
    table = Table("mailbox", "sent last hour", "sent last day", "state", title="Sending",
                  title_justify="left")
    for mb in data["mailboxes"]:
        table.add_row(Text(mb["name"] + (" (at cap)" if mb["at_cap"] else "")),
                      _cap(mb["sent_last_hour"], mb["hourly_cap"]),
                      _cap(mb["sent_last_day"], mb["daily_cap"]), Text(mb["state"]))
    out.print(table)
    inbox = Table("mailbox", "folder", "last read", title="Inbox", title_justify="left")
    for ib in data["inbox"]:
        inbox.add_row(Text(ib["mailbox"]), Text(ib["folder"] or "-"), _ago(ib["age_s"]))
    out.print(inbox)
    return 0
