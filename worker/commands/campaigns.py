"""`check`, `preview`, `simulate`, `send-test`: what a marketer runs before launch.

None of these needs a database or a secret (except `preview --lead EMAIL` and `send-test`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tomllib
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from pathlib import Path

from worker.adapters.campaign_folders import load_catalog, resolve_targets
from worker.app import App
from worker.config import Settings
from worker.domain import schedule
from worker.domain.campaigns import Campaign
from worker.domain.leads import parse_lead
from worker.domain.model import SAMPLE_LEAD, Lead
from worker.errors import LeadError, NotFound, TemplateError, UserError
from worker.mailer import MailFactory
from worker.usecases.campaign_check import lint, touch_for
from worker.usecases.campaign_views import calendar


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

def preview(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    camp = _campaign(s, args.campaign)
    lead = _lead(args.lead, s)
    factory = App(s).preview_factory()
    now = datetime.now(UTC)
    touch = touch_for(camp, args.step, lead, factory, now)
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
    for at, step_id, kind in calendar(camp, lead, start):
        print(f"{at}  {step_id}  {kind}")
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
    touch = touch_for(camp, args.step, lead, factory, now)
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
