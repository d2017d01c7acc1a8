"""What the workspace shows of a campaign and of the mails a lead got: the report's figures,
each step rendered for the sample lead, the simulated calendar, the problems `nurture check`
finds, and a sent mail or a task's text rendered for one lead.

The same functions as the commands (``build_report``, ``lint``, ``touch_for``,
``sequence.simulate``), so the page and the terminal agree. What depends only on the campaign
files is kept per catalog (it changes when the files do); the report's numbers are read in the
background and read again once older than ``report_ttl_s`` seconds (``kept.py``), so no page
waits for every touch to be read: at 100,000 leads the very first view says the figures are
being counted, and shows them a second later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

import jinja2

from worker.domain import schedule, sequence
from worker.domain.campaigns import Campaign, Issue, Step
from worker.domain.catalog import Catalog
from worker.domain.model import SAMPLE_LEAD, Lead
from worker.domain.sandbox import deadline
from worker.domain.sandbox_env import BoundedSandbox
from worker.errors import NotFound, TemplateError, UserError
from worker.mailer import MailFactory
from worker.ports import Clock
from worker.usecases.campaign_check import lint, touch_for
from worker.usecases.campaign_report import ReportDb, build_report
from worker.usecases.kept import Kept

# How long a page waits for a report nobody has read yet before it says "counting".
REPORT_WAIT_S = 0.05
# A task text is a short template; a missing field renders empty rather than failing.
_LINE_ENV = BoundedSandbox(undefined=jinja2.ChainableUndefined, autoescape=False)


class LeadReader(Protocol):
    """One lead by id (``Database.lead_by_id``)."""

    def lead_by_id(self, lead_id: int) -> Lead | None: ...


@dataclass(frozen=True)
class StepView:
    """One step as the sample lead would get it: a mail's subject and text, or a task's
    text; ``error`` when it does not render."""

    number: int
    id: str
    kind: str
    subject: str
    text: str
    error: str | None = None


@dataclass(frozen=True)
class CampaignPage:
    """Everything the campaign page shows. ``report`` is one campaign of ``nurture report
    --json``; ``calendar`` holds (local time, step id, kind) as ``nurture simulate`` prints."""

    slug: str
    name: str
    loaded: bool
    report: dict[str, Any]
    steps: list[StepView]
    calendar: list[tuple[str, str, str]]
    problems: list[str]
    counting: bool = False  # the report's first read is still under way


@dataclass(frozen=True)
class _Source:
    catalog: Catalog
    db: ReportDb


class CampaignViews:
    """The campaign page's and the lead timeline's renderings (see the module docstring)."""

    def __init__(self, catalog: Callable[[], Catalog], db: ReportDb, leads: LeadReader,
                 factory: MailFactory, clock: Clock, report_ttl_s: float = 30.0,
                 report_wait_s: float = REPORT_WAIT_S) -> None:
        self.catalog, self.db, self.leads = catalog, db, leads
        self.factory, self.clock, self.report_wait_s = factory, clock, report_wait_s
        self._lock = threading.Lock()
        self._files: dict[tuple[str, str], tuple[list[StepView], list[str]]] = {}
        self._reports: Kept[dict[str, Any]] = Kept("report", report_ttl_s)

    def page(self, slug: str) -> CampaignPage | None:
        """The campaign page's data; None for a campaign neither loaded, broken nor sent."""
        catalog = self.catalog()
        camp = catalog.campaigns.get(slug) or catalog.partial.get(slug)
        try:
            report = self._report(catalog, slug)
        except NotFound:
            if camp is None and slug not in catalog.problems:
                return None
            report = {}
        steps, problems = self._from_files(catalog, slug, camp)
        loaded = slug in catalog.campaigns
        return CampaignPage(slug, camp.name if camp else slug, loaded, report or {}, steps,
                            calendar(camp, replace(SAMPLE_LEAD, timezone=None), self.clock.now())
                            if loaded and camp else [], problems, counting=report is None)

    def _report(self, catalog: Catalog, slug: str) -> dict[str, Any] | None:
        """The campaign's report (see ``kept.py``): None while the first read of it is still
        under way after ``report_wait_s`` (about a second at 100,000 leads)."""
        return self._reports.get(slug, lambda: self._read_report(catalog, slug),
                                 self.report_wait_s, catalog.digest)

    def _read_report(self, catalog: Catalog, slug: str) -> dict[str, Any]:
        data: dict[str, Any] = build_report(_Source(catalog, self.db), slug)["campaigns"][0]
        return data

    def _from_files(self, catalog: Catalog, slug: str, camp: Campaign | None
                    ) -> tuple[list[StepView], list[str]]:
        key = (slug, catalog.digest)
        with self._lock:
            if key in self._files:
                return self._files[key]
        found = set(catalog.problems.get(slug, []))
        steps: list[StepView] = []
        if camp is not None:
            found.update(lint(camp, self.factory))
            steps = self._steps(camp)
        result = (steps, [str(p) for p in sorted(found)])
        with self._lock:
            self._files = {k: v for k, v in self._files.items() if k[0] != slug}
            self._files[key] = result
        return result

    def _steps(self, camp: Campaign) -> list[StepView]:
        now = self.clock.now()
        out: list[StepView] = []
        items: list[Step | Issue] = [*camp.steps, *camp.issues]
        for number, step in enumerate(items, start=1):
            if isinstance(step, Step) and step.task is not None:
                out.append(StepView(number, step.id, "task", "",
                                    task_text(step.task, SAMPLE_LEAD)))
                continue
            subject, text, error = self._mail(camp, step.id, SAMPLE_LEAD, now)
            out.append(StepView(number, step.id, "email", subject, text, error))
        return out

    def _mail(self, camp: Campaign, step_id: str, lead: Lead, now: datetime
              ) -> tuple[str, str, str | None]:
        try:
            touch = touch_for(camp, step_id, lead, self.factory, now)
            _, subject, rendered = self.factory.build_full(camp, touch, lead, 0, now)
        except (TemplateError, UserError) as exc:
            return "", "", str(exc)
        return subject, rendered.text, None

    # --- one lead ---------------------------------------------------------------------------

    def lead(self, lead_id: int) -> Lead | None:
        """The lead as the renderer sees it."""
        return self.leads.lead_by_id(lead_id)

    def sent_text(self, lead: Lead, campaign: str, step_id: str, at: datetime) -> str:
        """The text part of the mail this lead got at ``step_id``, rendered again now (with
        the campaign files as they are now); an explanation when that is not possible."""
        camp = self.catalog().campaigns.get(campaign)
        if camp is None:
            return f"(campaign {campaign} is not loaded: the text cannot be shown)"
        try:
            camp.step(step_id)
        except KeyError:
            return f"(step {step_id} is no longer in {campaign})"
        subject, text, error = self._mail(camp, step_id, lead, at)
        return f"({error})" if error else f"Subject: {subject}\n\n{text}"


def calendar(camp: Campaign, lead: Lead, start: datetime) -> list[tuple[str, str, str]]:
    """``nurture simulate``: (local time, step id, kind) of every touch ``lead`` would get
    from ``start``, in the lead's zone (the campaign's when it has none)."""
    cal = schedule.calendar_for(camp.window, lead.timezone)
    return [(t.at.astimezone(cal.tz).replace(microsecond=0).isoformat(), t.step_id, t.kind)
            for t in sequence.simulate(camp, lead, start)]


def task_text(source: str, lead: Lead) -> str:
    """A task's stored text (a template such as ``Call {{ lead.first_name }}``) rendered
    for the lead in the sandbox; the source itself when it does not render."""
    try:
        with deadline():
            return _LINE_ENV.from_string(source).render(sequence.condition_context(lead))
    except (jinja2.TemplateError, TemplateError, TypeError, ValueError, ArithmeticError,
            RecursionError):
        return source
