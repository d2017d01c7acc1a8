"""`check`, `preview`, `simulate`, `send-test`: what a marketer runs before launch.

None of these needs a database or a secret (except `preview --lead EMAIL` and `send-test`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from urllib.parse import urlsplit

from worker.app import App
from worker.catalog import load_catalog, resolve_targets
from worker.config import Settings
from worker.domain import schedule, sequence
from worker.domain.campaigns import Campaign, Issue, Step
from worker.domain.leads import parse_lead
from worker.domain.model import SAMPLE_LEAD, Lead
from worker.domain.sequence import PriorTouch, TouchPlan
from worker.errors import LeadError, NotFound, Problem, TemplateError, UserError
from worker.mailer import MailFactory

MAX_MAIL_BYTES = 100 * 1024
MINIMAL_LEAD = Lead(email="someone@example.com", id=0)
_URL_OK = ("http", "https", "mailto", "tel")


def _campaign(settings: Settings, name: str) -> Campaign:
    folders = resolve_targets([name], settings.campaigns_dir)
    if len(folders) != 1:
        raise UserError(f"{name}: name one campaign, not a folder of {len(folders)} campaigns")
    catalog = load_catalog(settings.campaigns_dir, settings.templates_dir, folders,
                           frozenset(settings.mailboxes))
    slug = folders[0].name
    if slug in catalog.problems:
        problems = catalog.problems[slug]
        raise UserError(f"{slug} has {len(problems)} problem(s); first: {problems[0]} "
                        f"(run `nurture check {name}`)")
    return catalog.campaigns[slug]


# --- check --------------------------------------------------------------------------------------

def check(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    folders = resolve_targets(args.campaigns, s.campaigns_dir)
    catalog = load_catalog(s.campaigns_dir, s.templates_dir, folders, frozenset(s.mailboxes))
    factory = App(s).preview_factory()
    problems = set(catalog.all_problems())
    for camp in [*catalog.campaigns.values(), *catalog.partial.values()]:
        problems.update(lint(camp, factory))
    for problem in sorted(problems):
        print(problem)
    print(f"checked {len(folders)} campaign(s): {len(problems)} problem(s)", file=sys.stderr)
    return 1 if problems else 0


def lint(camp: Campaign, factory: MailFactory) -> list[Problem]:
    """What only rendering shows: missing fields, links, unsubscribe link, size, window."""
    problems: list[Problem] = []
    now = datetime(2026, 1, 5, 12, tzinfo=UTC)
    try:
        cal = schedule.calendar_for(camp.window, None)
        schedule.next_open(cal, now)
    except ValueError as exc:
        problems.append(Problem(camp.file, camp.lines.get("window", 1), str(exc)))
        return problems
    problems.extend(_condition_limits(camp))
    items: list[Step | Issue] = [*camp.steps, *camp.issues]
    for item in items:
        step_id = item.id
        if step_id not in camp.mails:
            continue
        mail = camp.mails[step_id]
        for lead, who in ((SAMPLE_LEAD, ""), (MINIMAL_LEAD, " (for a lead with only an email "
                                                          "address)")):
            touch = TouchPlan(item, "email", touch_number=1)
            try:
                envelope, _, rendered = factory.build_full(camp, touch, lead, 0, now)
            except TemplateError as exc:
                problems.append(Problem(exc.template, exc.line, exc.reason + who))
                break  # the same mistake for the minimal lead would only repeat it
            if lead is not SAMPLE_LEAD:
                continue
            if len(envelope.data) > MAX_MAIL_BYTES:
                problems.append(Problem(mail.name, 1, f"the mail is {len(envelope.data) // 1024} "
                                        "KB, over 100 KB (Gmail clips long mails)"))
            if camp.kind == "newsletter" and "/u/" not in rendered.html:
                problems.append(Problem(mail.name, 1, "newsletter mail without an unsubscribe "
                                        "link ({{ unsubscribe_url }})"))
            for href in re.findall(r"""href\s*=\s*["']([^"']*)["']""", rendered.html):
                reason = _bad_link(href)
                if reason:
                    problems.append(Problem(mail.name, _line_of(mail.source, href), reason))
    return problems


def _condition_limits(camp: Campaign) -> list[Problem]:
    """A `when` that goes past a sandbox limit for the sample lead (the worker would skip
    the campaign)."""
    problems: list[Problem] = []
    for when in camp.conditions.values():
        try:
            when(sequence.condition_context(SAMPLE_LEAD))
        except TemplateError as exc:
            problems.append(Problem(exc.template, exc.line, exc.reason))
    return problems


def _bad_link(href: str) -> str | None:
    if not href.strip():
        return "empty link"
    if href.startswith("#"):
        return None
    if " " in href.strip():
        return f"link contains a space: {href!r}"
    parts = urlsplit(href)
    if parts.scheme not in _URL_OK:
        return f"link {href!r} needs http://, https:// or mailto:"
    if parts.scheme in ("http", "https") and ("." not in parts.netloc and
                                              parts.netloc.split(":")[0] != "localhost"):
        return f"link {href!r} has no valid host"
    return None


def _line_of(source: str, needle: str) -> int:
    for number, line in enumerate(source.splitlines(), start=1):
        if needle in line:
            return number
    return 1


# --- leads for preview and simulate ------------------------------------------------------------

def lead_from_file(path: str) -> Lead:
    """A lead from a JSON or TOML file of lead fields. Raises UserError naming the file."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
        data = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"{path}: not valid {'TOML' if file.suffix == '.toml' else 'JSON'}: "
                        f"{exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected an object of lead fields")
    try:
        parsed = parse_lead(data)
    except LeadError as exc:
        raise UserError(f"{path}: {exc}") from None
    c = parsed.columns
    return Lead(email=parsed.email, id=0, first_name=c.get("first_name"),
                last_name=c.get("last_name"), company=c.get("company"), title=c.get("title"),
                phone=c.get("phone"), timezone=c.get("timezone"), country=c.get("country"),
                owner=c.get("owner"), tags=tuple(parsed.tags), fields=parsed.fields)


def _lead(value: str | None, settings: Settings) -> Lead:
    if not value:
        return SAMPLE_LEAD
    if Path(value).is_file():
        return lead_from_file(value)
    if "@" in value:
        lead = App(settings).db.lead_by_email(value)
        if lead is None:
            raise NotFound(f"no stored lead {value!r} (pass a JSON or TOML file instead)")
        return lead
    raise UserError(f"--lead {value}: neither a file nor an email address")


# --- preview ------------------------------------------------------------------------------------

def _touch(camp: Campaign, step_id: str, lead: Lead, factory: MailFactory,
           now: datetime) -> TouchPlan:
    try:
        item = camp.step(step_id)
    except KeyError:
        ids = ", ".join(i for i in camp.mails)
        raise NotFound(f"{camp.slug} has no email step {step_id!r} (email steps: {ids})") from None
    if step_id not in camp.mails:
        raise UserError(f"{camp.slug}: step {step_id!r} is a task, not an email")
    parent = None
    if isinstance(item, Step) and item.thread:
        earlier = [s for s in camp.email_steps() if s.index < item.index]
        if earlier:
            prev = earlier[-1]
            _, subject = factory.build(camp, TouchPlan(prev, "email"), lead, 0, now)
            parent = PriorTouch(prev.id, "email", "accepted",
                                f"nurture.0.{prev.id}@preview.invalid", subject, now)
    return TouchPlan(item, "email", touch_number=1, thread_parent=parent,
                     references=(parent.message_id,) if parent and parent.message_id else ())


def preview(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    camp = _campaign(s, args.campaign)
    lead = _lead(args.lead, s)
    factory = App(s).preview_factory()
    now = datetime.now(UTC)
    touch = _touch(camp, args.step, lead, factory, now)
    try:
        envelope, subject, rendered = factory.build_full(camp, touch, lead, 0, now)
    except TemplateError as exc:
        raise UserError(str(exc)) from None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{camp.slug}-{args.step}"
    base.with_suffix(".eml").write_bytes(envelope.data.replace(b"\r\n", b"\n"))
    base.with_suffix(".html").write_text(rendered.html, encoding="utf-8")
    base.with_suffix(".txt").write_text(f"Subject: {subject}\n\n{rendered.text}", encoding="utf-8")
    for suffix in (".eml", ".html", ".txt"):
        print(base.with_suffix(suffix))
    print(f"subject: {subject}; {len(envelope.data)} bytes", file=sys.stderr)
    return 0


# --- simulate -----------------------------------------------------------------------------------

def simulate(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    camp = _campaign(s, args.campaign)
    lead = lead_from_file(args.lead) if args.lead else replace(SAMPLE_LEAD, timezone=None)
    cal = schedule.calendar_for(camp.window, lead.timezone)
    start = _start(args.start, cal.tz)
    for touch in sequence.simulate(camp, lead, start):
        at = touch.at.astimezone(cal.tz).replace(microsecond=0).isoformat()
        print(f"{at}  {touch.step_id}  {touch.kind}")
    return 0


def _start(value: str | None, tz: tzinfo) -> datetime:
    if not value:
        return datetime.now(UTC).replace(second=0, microsecond=0)
    try:
        start = datetime.fromisoformat(value)
    except ValueError:
        raise UserError(f"--start {value!r}: not an ISO 8601 time such as "
                        "2026-03-02T09:00 or 2026-03-02T09:00:00-05:00") from None
    return start.replace(tzinfo=tz) if start.tzinfo is None else start


# --- send-test ----------------------------------------------------------------------------------

def send_test(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    camp = _campaign(s, args.campaign)
    app = App(s)
    lead = _lead(args.lead, s)
    factory = app.preview_factory() if not s.secret_key else MailFactory(s, app.secret_key(False))
    now = datetime.now(UTC)
    touch = _touch(camp, args.step, lead, factory, now)
    try:
        to = parse_lead({"email": args.to}).email
    except LeadError as exc:
        raise UserError(f"--to: {exc.reason}") from None
    import secrets as _secrets
    domain = factory.mailboxes.route(camp, lead).from_addr.rpartition("@")[2] or "localhost"
    envelope, subject = factory.build(camp, touch, lead, 0, now, to=to,
                                      message_id=f"nurture.test.{_secrets.token_hex(6)}@{domain}")

    async def go() -> str:
        channel = await app.sender.open_channel(envelope.mailbox)
        try:
            result = await channel.send(envelope)
        finally:
            await channel.close()
        assert result is not None  # no gate: never withdrawn
        return result.message

    answer = asyncio.run(go())
    print(f"sent {camp.slug}/{args.step} ({subject!r}) to {to}: {answer}")
    return 0
