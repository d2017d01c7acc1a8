"""Campaign folder -> Campaign, validated; every problem carries its file and line.

The folder's files come in through ``CampaignSource`` (the catalog reads the disk), so this
module does no I/O of its own.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from worker.domain import schedule
from worker.domain.checker import Checker, locate_keys
from worker.domain.mime import Attachment, prepare_attachment, split_address
from worker.domain.render import CompiledMail, Renderer, front_matter_line
from worker.domain.schedule import Wait, Window
from worker.errors import CampaignError, Problem, TemplateError

SLUG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$")
TOP_KEYS = {"name", "kind", "sender", "reply_to", "enroll_tags", "enroll_when", "on_reply",
            "on_finish", "layout", "description", "window", "step",
            "not_now_campaign", "referral_campaign", "not_interested"}
WINDOW_KEYS = {"days", "hours", "timezone", "default_timezone", "holidays"}
STEP_KEYS = {"id", "wait", "day", "template", "task", "task_kind", "thread", "when", "window",
             "attachments", "wait_for_task", "description"}
TASK_KINDS = ("call", "postcard", "linkedin", "research", "task")
MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
_CONTENT_TYPES = {".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg",
                  ".jpeg": "image/jpeg", ".txt": "text/plain; charset=utf-8", ".csv": "text/csv",
                  ".ics": "text/calendar", ".zip": "application/zip"}


class CampaignSource(Protocol):
    """The files of one campaign folder."""

    slug: str
    path: str

    def read_text(self, name: str) -> str | None: ...

    def read_bytes(self, name: str) -> bytes | None: ...

    def list(self, subdir: str) -> list[str]: ...


@dataclass(frozen=True)
class Step:
    id: str
    index: int
    line: int
    wait: Wait | None = None
    day: int | None = None
    template: str | None = None
    task: str | None = None
    task_kind: str | None = None
    thread: bool = False
    when: str | None = None
    use_window: bool = True
    attachments: tuple[str, ...] = ()
    wait_for_task: bool = False

    @property
    def kind(self) -> str:
        return "task" if self.task is not None else "email"


@dataclass(frozen=True)
class Issue:
    id: str
    send_on: date
    template: str


@dataclass
class Campaign:
    slug: str
    path: str
    name: str
    kind: str
    sender: str
    reply_to: str | None = None
    enroll_tags: tuple[str, ...] = ()
    enroll_when: str | None = None
    on_reply: str = "stop"
    on_finish: str | None = None
    # What a reply's intent leads to (issue 14): where a "not now" and a referred person are
    # enrolled, and whether a "no thanks" joins on_finish ("newsletter") or nothing ("stop").
    not_now_campaign: str | None = None
    referral_campaign: str | None = None
    not_interested: str = "newsletter"
    layout: str = "layout"
    window: Window | None = None
    steps: tuple[Step, ...] = ()
    issues: tuple[Issue, ...] = ()
    mails: dict[str, CompiledMail] = field(default_factory=dict)
    attachments: dict[str, Attachment] = field(default_factory=dict)
    conditions: dict[str, Callable[[Mapping[str, Any]], bool]] = field(default_factory=dict)
    enroll_condition: Callable[[Mapping[str, Any]], bool] | None = None
    lines: dict[str, int] = field(default_factory=dict)

    @property
    def file(self) -> str:
        return f"{self.path}/campaign.toml"

    def step(self, step_id: str) -> Step | Issue:
        items: list[Step | Issue] = [*self.steps, *self.issues]
        for item in items:
            if item.id == step_id:
                return item
        raise KeyError(step_id)

    def email_steps(self) -> list[Step]:
        return [s for s in self.steps if s.kind == "email"]


def parse_campaign(source: CampaignSource, renderer: Renderer) -> Campaign:
    """Read and validate one campaign folder. Raises CampaignError listing every problem."""
    camp, problems = inspect_campaign(source, renderer)
    if camp is None or problems:
        raise CampaignError(problems)
    return camp


def inspect_campaign(source: CampaignSource,
                     renderer: Renderer) -> tuple[Campaign | None, list[Problem]]:
    """Read a campaign folder as far as it goes: the campaign (possibly partial, for further
    checks) and every problem found. The campaign is None only when the TOML is unreadable."""
    file = f"{source.path}/campaign.toml"
    text = source.read_text("campaign.toml")
    if text is None:
        return None, [Problem(file, 1, "campaign.toml is missing")]
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = re.search(r"line (\d+)", str(exc))
        return None, [Problem(file, int(match.group(1)) if match else 1,
                              f"not valid TOML: {exc}")]
    check = Checker(file, locate_keys(text))
    for key in data:
        if key not in TOP_KEYS:
            check.add(key, f"unknown key {key!r}")
    camp = Campaign(slug=source.slug, path=source.path, name=_str(data, "name", check) or source.slug,
                    kind=_str(data, "kind", check) or "sequence",
                    sender=_str(data, "sender", check) or "", lines=check.lines)
    if "name" not in data:
        check.add("name", "missing required key 'name'", line=1)
    if camp.kind not in ("sequence", "newsletter"):
        check.add("kind", f"kind must be 'sequence' or 'newsletter' (got {camp.kind!r})")
    if not camp.sender:
        check.add("sender", "missing required key 'sender' (an address or a mailbox name)", line=1)
    elif "@" in camp.sender and "@" not in split_address(camp.sender)[1]:
        check.add("sender", f"sender is not a valid address: {camp.sender!r}")
    camp.reply_to = _str(data, "reply_to", check)
    camp.on_reply = _str(data, "on_reply", check) or "stop"
    if camp.on_reply not in ("stop", "pause-company"):
        check.add("on_reply", f"on_reply must be 'stop' or 'pause-company' (got {camp.on_reply!r})")
    camp.on_finish = _str(data, "on_finish", check)
    camp.not_now_campaign = _str(data, "not_now_campaign", check)
    camp.referral_campaign = _str(data, "referral_campaign", check)
    camp.not_interested = _str(data, "not_interested", check) or "newsletter"
    if camp.not_interested not in ("newsletter", "stop"):
        check.add("not_interested", "not_interested must be 'newsletter' or 'stop' (got "
                  f"{camp.not_interested!r})")
    camp.layout = _str(data, "layout", check) or "layout"
    tags = data.get("enroll_tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        check.add("enroll_tags", "enroll_tags must be a list of strings")
    else:
        camp.enroll_tags = tuple(t.strip().lower() for t in tags)
    camp.enroll_when = _str(data, "enroll_when", check)
    if camp.enroll_when:
        try:
            camp.enroll_condition = renderer.compile_condition(
                camp.enroll_when, file, check.lines.get("enroll_when", 1))
        except TemplateError as exc:
            check.add("enroll_when", exc.reason)
    camp.window = _window(data.get("window"), check)
    if camp.kind == "newsletter":
        if data.get("step"):
            check.add("step.0", "a newsletter has dated issues in issues/, not steps")
        camp.issues = _issues(source, renderer, camp, check)
    else:
        camp.steps = _steps(data.get("step"), source, renderer, camp, check)
    return camp, check.problems


def _str(data: Mapping[str, Any], key: str, check: Checker, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        check.add(prefix + key, f"{key} must be a string (got {value!r})")
        return None
    return value.strip()


def _window(raw: Any, check: Checker) -> Window | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        check.add("window", "[window] must be a table")
        return None
    for key in raw:
        if key not in WINDOW_KEYS:
            check.add(f"window.{key}", f"unknown key {key!r} in [window]")
    win = Window()
    kwargs: dict[str, Any] = {}
    try:
        if "days" in raw:
            kwargs["days"] = schedule.parse_days(list(raw["days"]))
    except (ValueError, TypeError) as exc:
        check.add("window.days", str(exc))
    try:
        if "hours" in raw:
            kwargs["start"], kwargs["end"] = schedule.parse_hours(str(raw["hours"]))
    except ValueError as exc:
        check.add("window.hours", str(exc))
    for key in ("timezone", "default_timezone"):
        value = raw.get(key)
        if value is None:
            continue
        if not (key == "timezone" and value == "lead"):
            try:
                schedule.zone(str(value))
            except ValueError as exc:
                check.add(f"window.{key}", str(exc))
                continue
        kwargs[key] = str(value)
    if "holidays" in raw:
        try:
            schedule.holiday_calendar(str(raw["holidays"]))
            kwargs["holidays"] = str(raw["holidays"])
        except ValueError as exc:
            check.add("window.holidays", str(exc))
    return Window(**{**win.__dict__, **kwargs})


def _steps(raw: Any, source: CampaignSource, renderer: Renderer, camp: Campaign,
           check: Checker) -> tuple[Step, ...]:
    if not raw:
        check.add("step", "a sequence needs at least one [[step]]", line=1)
        return ()
    if not isinstance(raw, list):
        check.add("step", "step must be written as [[step]] tables")
        return ()
    steps: list[Step] = []
    seen: set[str] = set()
    last_day, had_email = -1, False
    for index, item in enumerate(raw):
        key = f"step.{index}"
        for name in item:
            if name not in STEP_KEYS:
                check.add(f"{key}.{name}", f"unknown key {name!r} in [[step]]")
        step_id = str(item.get("id", f"step-{index + 1}"))
        if not SLUG_RE.match(step_id):
            check.add(f"{key}.id", f"step id {step_id!r} may hold only letters, digits, - and _")
        if step_id in seen:
            check.add(f"{key}.id", f"step id {step_id!r} is used twice")
        seen.add(step_id)
        wait, day = _timing(item, key, index, last_day, check)
        if day is not None:
            last_day = day
        template, task = item.get("template"), item.get("task")
        if (template is None) == (task is None):
            check.add(key, "a step needs either 'template' (an email) or 'task' (a task)")
        when = _str(item, "when", check, key + ".")
        step = Step(
            id=step_id, index=index, line=check.lines.get(key, 1), wait=wait, day=day,
            template=str(template) if template is not None else None,
            task=str(task) if task is not None else None,
            task_kind=_task_kind(item, key, check) if task is not None else None,
            thread=bool(item.get("thread", False)), when=when,
            use_window=bool(item.get("window", True)),
            attachments=tuple(str(a) for a in item.get("attachments", [])),
            wait_for_task=bool(item.get("wait_for_task", False)))
        if step.thread and not had_email:
            check.add(f"{key}.thread", "thread = true needs an earlier email step to reply to")
        if when:
            try:
                camp.conditions[step_id] = renderer.compile_condition(
                    when, check.file, check.lines.get(f"{key}.when", step.line))
            except TemplateError as exc:
                check.add(f"{key}.when", exc.reason)
        if step.template is not None:
            had_email = True
            _compile(source, step.template, step_id, f"{key}.template", renderer, camp, check)
            for name in step.attachments:
                _attach(source, name, f"{key}.attachments", camp, check)
        steps.append(step)
    return tuple(steps)


def _timing(item: Mapping[str, Any], key: str, index: int, last_day: int,
            check: Checker) -> tuple[Wait | None, int | None]:
    if "wait" in item and "day" in item:
        check.add(f"{key}.day", "use either 'wait' or 'day', not both")
    if "day" in item:
        day = item["day"]
        if isinstance(day, bool) or not isinstance(day, int) or day < 0:
            check.add(f"{key}.day", f"day must be a whole number of 0 or more (got {day!r})")
            return None, None
        if day < last_day:
            check.add(f"{key}.day", f"day {day} comes before the previous step's day {last_day}")
        return None, day
    if "wait" in item:
        try:
            return schedule.parse_wait(str(item["wait"])), None
        except ValueError as exc:
            check.add(f"{key}.wait", str(exc))
            return None, None
    if index > 0:
        check.add(key, "a step needs 'wait' (after the previous step) or 'day' (from enrolment)")
    return Wait(0, "s"), None


def _task_kind(item: Mapping[str, Any], key: str, check: Checker) -> str:
    kind = item.get("task_kind")
    if kind is not None:
        if kind not in TASK_KINDS:
            check.add(f"{key}.task_kind", f"task_kind must be one of {', '.join(TASK_KINDS)}")
        return str(kind)
    text = f"{item.get('id', '')} {item.get('task', '')}".lower()
    for candidate in ("linkedin", "postcard", "call", "research"):
        if candidate in text:
            return candidate
    return "task"


def _compile(source: CampaignSource, name: str, mail_id: str, key: str, renderer: Renderer,
             camp: Campaign, check: Checker) -> None:
    path = f"{source.path}/{name}"
    if not name.endswith((".md", ".html")):
        check.add(key, f"template {name!r} must be a .md or .html file")
        return
    text = source.read_text(name)
    if text is None:
        check.add(key, f"template {name!r} not found in {source.path}")
        return
    try:
        camp.mails[mail_id] = renderer.compile(path, text, camp.layout)
    except TemplateError as exc:
        check.add(key, exc.reason, file=exc.template, line=exc.line)


def _attach(source: CampaignSource, name: str, key: str, camp: Campaign, check: Checker) -> None:
    data = source.read_bytes(name)
    if data is None:
        check.add(key, f"attachment {name!r} not found in {source.path}")
        return
    if len(data) > MAX_ATTACHMENT_BYTES:
        check.add(key, f"attachment {name!r} is over {MAX_ATTACHMENT_BYTES // 1048576} MB")
        return
    suffix = "." + name.rpartition(".")[2].lower() if "." in name else ""
    camp.attachments[name] = prepare_attachment(name.rpartition("/")[2], data,
                                                _CONTENT_TYPES.get(suffix, "application/octet-stream"))


def _issues(source: CampaignSource, renderer: Renderer, camp: Campaign,
            check: Checker) -> tuple[Issue, ...]:
    issues: list[Issue] = []
    for name in source.list("issues"):
        if not name.endswith((".md", ".html")):
            continue
        rel = f"issues/{name}"
        issue_id = name.rsplit(".", 1)[0]
        before = len(camp.mails)
        _compile(source, rel, issue_id, "kind", renderer, camp, check)
        if len(camp.mails) == before:
            continue
        mail = camp.mails[issue_id]
        send_on = mail.front.get("send_on")
        if isinstance(send_on, str):
            with contextlib.suppress(ValueError):
                send_on = date.fromisoformat(send_on)
        if not isinstance(send_on, date):
            check.add("kind", "front matter needs 'send_on: YYYY-MM-DD'",
                      file=f"{source.path}/{rel}", line=front_matter_line(mail.source, "send_on"))
            continue
        issues.append(Issue(issue_id, send_on, rel))
    return tuple(sorted(issues, key=lambda i: (i.send_on, i.id)))
