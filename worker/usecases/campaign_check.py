"""What a marketer checks before launch, shared by `check`, `preview`, `send-test` and the
workspace's campaign page: the problems only rendering shows (``lint``) and the touch of one
email step for a preview (``touch_for``). Moved here as is from ``worker/commands/campaigns.py``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from urllib.parse import urlsplit

from worker.domain import schedule, sequence
from worker.domain.campaigns import Campaign, Issue, Step
from worker.domain.model import SAMPLE_LEAD, Lead
from worker.domain.sequence import PriorTouch, TouchPlan
from worker.errors import NotFound, Problem, TemplateError, UserError
from worker.mailer import MailFactory

MAX_MAIL_BYTES = 100 * 1024
MINIMAL_LEAD = Lead(email="someone@example.com", id=0)
_URL_OK = ("http", "https", "mailto", "tel")


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


def touch_for(camp: Campaign, step_id: str, lead: Lead, factory: MailFactory,
           now: datetime) -> TouchPlan:
    """The touch of email step ``step_id``, threaded under the email step before it when
    the step says ``thread``. Raises NotFound or UserError naming the step."""
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
