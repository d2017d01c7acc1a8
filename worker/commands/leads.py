"""Lead commands: import, list, enroll, event, pause/resume/cancel, unsubscribe, suppress."""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from worker.adapters.importer import ImportFileError, Row, detect_encoding, read_rows
from worker.app import App
from worker.config import Settings
from worker.domain.leads import (
    LeadInput,
    normalize_email,
    parse_field_args,
    parse_lead,
    printable,
)
from worker.domain.model import OPEN_STATUSES, EnrollmentStatus
from worker.errors import LeadError, UserError

BATCH = 500


def import_leads(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{args.file}: no such file")
    if args.campaign:
        app.catalog.get(args.campaign)
    app.db.check_schema()
    encoding, clean = detect_encoding(path)
    if not clean and encoding == "utf-8-sig":
        print(f"{args.file}: not UTF-8 throughout; bytes that are not were replaced. Save the "
              "file as UTF-8 to be sure of accented names.", file=sys.stderr)
    elif not clean:
        print(f"{args.file}: not UTF-8; read as Windows-1252 (Latin-1). Save the file as UTF-8 "
              "to be sure of accented names.", file=sys.stderr)
    counts = {"imported": 0, "updated": 0, "unchanged": 0, "rejected": 0}
    seen: dict[str, int] = {}
    batch: list[tuple[Row, LeadInput]] = []
    tags = [t.strip().lower() for t in args.tag if t.strip()]

    def reject(line: int, reason: str) -> None:
        counts["rejected"] += 1
        print(f"{args.file}: line {line}: {reason}")

    def flush() -> None:
        if not batch:
            return
        suppressed = app.db.suppressed_among([inp.email for _, inp in batch])
        keep = []
        for row, inp in batch:
            if inp.email in suppressed:
                reject(row.line, f"suppressed ({suppressed[inp.email]})")
            else:
                keep.append((row, inp))
        results = app.db.upsert_leads([(inp, f"import:{path.name}") for _, inp in keep])
        for (_, inp), result in zip(keep, results, strict=True):
            counts[result.outcome] += 1
            for slug in app.service.campaigns_for(inp, args.campaign):
                if app.service.enroll(result.lead_id, slug, reason=f"import {path.name}"):
                    enrolled[slug] = enrolled.get(slug, 0) + 1
        batch.clear()

    enrolled: dict[str, int] = {}
    with open(path, "rb") as handle, _progress(path) as advance, _one_line_per_import():
        try:
            for row in read_rows(path, handle, encoding):
                advance(handle.tell())
                if row.error or row.data is None:
                    reject(row.line, row.error or "unreadable row")
                    continue
                try:
                    inp = parse_lead(row.data)
                except LeadError as exc:
                    reject(row.line, str(exc))
                    continue
                if inp.email in seen:
                    reject(row.line, f"duplicate of line {seen[inp.email]} (that row is kept)")
                    continue
                seen[inp.email] = row.line
                inp.tags = sorted(set(inp.tags) | set(tags))
                batch.append((row, inp))
                if len(batch) >= BATCH:
                    flush()
        except ImportFileError as exc:
            flush()
            raise UserError(f"{args.file}: {exc}") from None
        flush()
    if enrolled:  # one summary instead of a log line per enrolment
        print("enrolled " + ", ".join(f"{n} in {slug}" for slug, n in sorted(enrolled.items())),
              file=sys.stderr)
    print(f"imported {counts['imported']}, updated {counts['updated']}, unchanged "
          f"{counts['unchanged']}, rejected {counts['rejected']}")
    return 1 if counts["rejected"] else 0


@contextlib.contextmanager
def _one_line_per_import() -> Iterator[None]:
    """Leave out the service's INFO line per enrolment while a file is imported (the command
    prints a summary); warnings and errors still show."""
    def quiet(record: logging.LogRecord) -> bool:
        return not (record.levelno <= logging.INFO and str(record.msg).startswith(
            "action=enrolled "))
    logger = logging.getLogger("worker.service")
    logger.addFilter(quiet)
    try:
        yield
    finally:
        logger.removeFilter(quiet)


class _progress:
    """A rich progress bar on a terminal; nothing otherwise."""

    def __init__(self, path: Path) -> None:
        self.total = path.stat().st_size
        self.bar: Any = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty() and self.total > 256 * 1024:
            from rich.progress import Progress
            bar = Progress(transient=True)
            bar.start()
            task = bar.add_task("importing", total=self.total)
            self.bar = bar
            return lambda pos: bar.update(task, completed=pos)
        return lambda pos: None

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.stop()


def list_leads(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    rows = app.people.lead_enrollments(args.campaign, args.status, args.limit)
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text
    table = Table("email", "campaign", "status", "next step", "next due (UTC)")
    for r in rows:
        camp = app.catalog.campaigns.get(r.campaign or "")
        step = "-"
        # Only an open enrolment has a next step (not one that replied, bounced, ended).
        if camp and r.status in OPEN_STATUSES and r.next_step is not None \
                and r.next_step < len(camp.steps):
            step = camp.steps[r.next_step].id
        table.add_row(Text(printable(r.email)), r.campaign or "-", r.status or "-", step,
                      r.next_due_at.strftime("%Y-%m-%d %H:%M") if r.next_due_at else "-")
    Console(width=140).print(table)
    return 0


def enroll(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    data = {"email": args.email, **parse_field_args(args.field)}
    result = app.service.intake(data, campaign=args.campaign, source="cli")
    if result.enrolled:
        print(f"{normalize_email(args.email)}: enrolled in {args.campaign}")
    else:
        print(f"{normalize_email(args.email)}: already enrolled in {args.campaign}")
    return 0


def event(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    _, enrolled = app.service.record_event(args.email, args.type, parse_field_args(args.field),
                                           source="cli")
    suffix = f"; enrolled in {', '.join(enrolled)}" if enrolled else ""
    print(f"{normalize_email(args.email)}: {args.type} recorded{suffix}")
    return 0


def _by_hand(action: str) -> Callable[[argparse.Namespace, Callable[[], Settings]], int]:
    def command(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
        app = App(settings())
        app.db.check_schema()
        changed = getattr(app.by_hand, action)(args.email, args.campaign)
        done = {"pause": "paused", "resume": "resumed", "cancel": "cancelled"}[action]
        print(f"{normalize_email(args.email)}: {done} {', '.join(changed)}")
        return 0
    return command


pause = _by_hand("pause")
resume = _by_hand("resume")
cancel = _by_hand("cancel")


def unsubscribe(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    app = App(settings())
    app.db.check_schema()
    email = normalize_email(args.email)
    lead = app.db.lead_by_email(email)
    if lead is not None:
        app.by_hand.unsubscribe(lead.id, "cli")
    else:
        app.db.add_suppression(email, "unsubscribed", "cli")
    print(f"{email}: unsubscribed from everything")
    return 0


def suppress_import(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """One address or domain per line (``@example.com`` or ``example.com`` for a domain)."""
    app = App(settings())
    app.db.check_schema()
    path = Path(args.file)
    if not path.is_file():
        raise UserError(f"{args.file}: no such file")
    added = already = rejected = 0
    text = path.read_bytes().decode(detect_encoding(path)[0], errors="replace")
    for number, raw in enumerate(text.splitlines(), start=1):
        entry = raw.split("#", 1)[0].strip().strip(",;")
        if not entry or entry.lower() == "email":
            continue
        try:
            if entry.startswith("@") or "@" not in entry:
                domain = normalize_email(f"x@{entry.lstrip('@')}").partition("@")[2]
                ok = app.db.add_suppression(None, "operator", f"import:{path.name}", domain=domain)
                if ok:
                    app.db.close_enrollments(app.db.lead_ids_by_domain(domain),
                                             EnrollmentStatus.UNSUBSCRIBED, "domain suppressed")
            else:
                email = normalize_email(entry)
                ok = app.db.add_suppression(email, "operator", f"import:{path.name}")
                lead = app.db.lead_by_email(email)
                if lead is not None:
                    app.db.close_enrollments([lead.id], EnrollmentStatus.CANCELLED, "suppressed")
        except LeadError as exc:
            rejected += 1
            print(f"{args.file}: line {number}: {exc.reason}")
            continue
        added, already = (added + 1, already) if ok else (added, already + 1)
    print(f"suppressed {added}, already suppressed {already}, rejected {rejected}")
    return 1 if rejected else 0
