"""Test workspaces: a temp folder with campaigns, the shipped templates, SQLite and Maildirs,
and an App built on them. Factory helpers, not fixtures, so each test says what it needs."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from worker.app import App
from worker.config import Settings, load_settings

REPO = Path(__file__).resolve().parents[1]
SECRET = "test-secret-key-0123456789"
API_TOKEN = "test-api-token-0123456789"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime | None = None) -> None:
        self.at = start or datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # Monday 09:00 New York

    def now(self) -> datetime:
        return self.at

    def advance(self, **delta: float) -> datetime:
        self.at += timedelta(**delta)
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at


#: A campaign of two steps: "one" at once (outside any window), "two" three days later, both
#: from the template ``one.md``; the tests that need mail out and a sequence still open.
TWO_STEPS = """
    name = "Hello"
    kind = "sequence"
    sender = "Dana <dana@acme.example>"
    [[step]]
    id = "one"
    wait = "0"
    window = false
    template = "one.md"
    [[step]]
    id = "two"
    wait = "3 d"
    template = "one.md"
"""


def write_campaign(root: Path, slug: str, toml: str, files: Mapping[str, str | bytes]) -> Path:
    folder = root / slug
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "campaign.toml").write_text(textwrap.dedent(toml).lstrip(), encoding="utf-8")
    for name, content in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content).lstrip(), encoding="utf-8")
    return folder


def two_steps(tmp: Path, slug: str, second_wait: str = "30d", subject: str = "Hello") -> Path:
    """A campaign whose first mail goes at once and whose second waits ``second_wait``."""
    return write_campaign(tmp / "campaigns", slug, f"""
        name = "{slug.title()}"
        kind = "sequence"
        sender = "Dana at Acme <dana@acme.example>"
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        [[step]]
        id = "two"
        wait = "{second_wait}"
        template = "one.md"
        """, {"one.md": email_template(subject)})


def email_template(subject: str, body: str = "Hello {{ lead.first_name | default('there') }}.") -> str:
    return f"---\nsubject: \"{subject}\"\n---\n{body}\n"


def env_for(tmp: Path, **env: str) -> dict[str, str]:
    """The NURTURE_* variables of a workspace in ``tmp`` (absolute paths), overridden by
    ``env`` given as ``SECTION__KEY=value`` (without the ``NURTURE_`` prefix)."""
    if not (tmp / "templates").exists():
        shutil.copytree(REPO / "templates", tmp / "templates")
    (tmp / "campaigns").mkdir(exist_ok=True)
    environ = {
        "NURTURE_DATABASE__URL": f"sqlite:///{tmp}/var/nurture.db",
        "NURTURE_CAMPAIGNS__DIR": str(tmp / "campaigns"),
        "NURTURE_TEMPLATES__DIR": str(tmp / "templates"),
        "NURTURE_OUTBOUND__MAILDIR": str(tmp / "var" / "outbox"),
        "NURTURE_INBOUND__MAILDIR": str(tmp / "var" / "inbox"),
        "NURTURE_INBOUND__POLL_INTERVAL_S": "0.2",
        "NURTURE_HTTP__ENABLED": "false",
        "NURTURE_WORKER__HEARTBEAT_S": "0.5",
        "NURTURE_WORKER__RENDER_PROCESS": "false",  # in-process runners render in-process
        "NURTURE_SECRET_KEY": SECRET,
        "NURTURE_API_TOKEN": API_TOKEN,
    }
    environ.update({f"NURTURE_{k}": v for k, v in env.items()})
    return environ


def settings_for(tmp: Path, **env: str) -> Settings:
    """Settings for a workspace in ``tmp`` (see ``env_for``)."""
    return load_settings(REPO / "config" / "nurture.toml", environ=env_for(tmp, **env))


def make_app(tmp: Path, clock: Any = None, **env: str) -> App:
    """A migrated App on a fresh workspace."""
    app = App(settings_for(tmp, **env), clock=clock)
    app.db.migrate()
    return app


def run_once(app: App) -> int:
    """One `nurture run --once` pass in this process."""
    return asyncio.run(app.make_runner(once=True).run())


def outbox(tmp: Path) -> list[bytes]:
    folder = tmp / "var" / "outbox" / "new"
    return [p.read_bytes() for p in sorted(folder.iterdir())] if folder.exists() else []
