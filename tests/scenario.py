"""The shared scenario of the report and people tests: the real worker (real SMTP server,
real Dovecot, a fake clock) runs a campaign with scripted replies, bounces and tasks."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from tests.servers.dovecot import Account, Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from worker.app import App
from worker.cli import main
from worker.config import load_settings

REPO = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden"
ARTIFACTS = REPO / "test-artifacts"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
OWNER = "rep@acme.example"
LEADS = ["alice@a.example", "bob@b.example", "carol@c.example", "dave@d.example",
         "erin@e.example", "frank@f.example", "gina@g.example", "zed@z.example"]

DRIP = """name = "Drip"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
on_finish = "news"

[[step]]
id = "hello"
wait = "0"
template = "01-hello.md"

[[step]]
id = "follow-up"
wait = "2 d"
template = "02-follow-up.md"
thread = true

[[step]]
id = "call"
wait = "1 d"
task = "Call them about the report"
task_kind = "call"
wait_for_task = true

[[step]]
id = "last"
wait = "1 d"
template = "03-last.md"
"""
QUIET = """name = "Quiet"
kind = "sequence"
sender = "dana@acme.example"

[[step]]
id = "only"
wait = "0"
template = "01.md"
"""
NEWS = """name = "News"
kind = "newsletter"
sender = "Dana at Acme <dana@acme.example>"
"""


def _template(subject: str, body: str, extra: str = "") -> str:
    greeting = "Hi {{ lead.first_name | default('there') }},"
    return f"---\nsubject: \"{subject}\"\n{extra}---\n{greeting}\n\n{body}\n"


def write_campaigns(root: Path) -> None:
    """Three small campaigns with waits in days and no send window (the clock decides)."""
    files = {
        "drip/campaign.toml": DRIP,
        "drip/01-hello.md": _template("Your report", "Here is the report you asked for."),
        "drip/02-follow-up.md": _template("More on the report", "Any questions so far?"),
        "drip/03-last.md": _template("Last note", "This is my last note."),
        "quiet/campaign.toml": QUIET,
        "quiet/01.md": _template("Hello", "Nothing to see."),
        "news/campaign.toml": NEWS,
        "news/issues/2026-03-20-spring.md": _template("Spring news", "What is new.",
                                                      "send_on: 2026-03-20\n"),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


class FakeClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at


def reply(sender: str, subject: str, body: str, in_reply_to: str | None,
          extra: str = "") -> bytes:
    head = (f"From: {sender}\r\nTo: Dana <dana@acme.example>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash((sender, subject, body)))}@{sender.partition('@')[2]}>\r\n")
    if in_reply_to:
        head += f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
    return (head + extra + "Content-Type: text/plain; charset=utf-8\r\n\r\n" + body).encode()


def bounce_report(recipient: str, message_id: str) -> bytes:
    """A real-looking DSN (RFC 3464) for a 5.1.1 refusal of one of our mails."""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.d.example>\r\nTo: dana@acme.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <dsn-1@mx.d.example>\r\n"
        "Auto-Submitted: auto-replied\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; "
        "report-type=delivery-status; boundary=\"BB\"\r\n\r\n--BB\r\nContent-Type: text/plain\r\n"
        "\r\nYour message could not be delivered.\r\n\r\n--BB\r\n"
        "Content-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.d.example\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        f"Diagnostic-Code: smtp; 550 5.1.1 <{recipient}>: User unknown\r\n\r\n--BB\r\n"
        f"Content-Type: text/rfc822-headers\r\n\r\nFrom: dana@acme.example\r\nTo: {recipient}\r\n"
        f"Subject: Your report\r\nMessage-ID: <{message_id}>\r\n\r\n--BB--\r\n").encode()


def run_cli(config: Path, env: dict[str, str], clock: FakeClock,
            *args: str) -> tuple[int, str, str]:
    """`nurture --config CONFIG ARGS` in-process, every App on ``clock``; the CLI's logging
    setup is undone afterwards so pytest keeps its own handlers."""
    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        mp.setattr("worker.app.SystemClock", lambda: clock)
        for key, value in env.items():
            mp.setenv(key, value)
        try:
            code = main(["--config", str(config), *args])
        finally:
            root.handlers[:] = handlers
            root.setLevel(level)
    return code, out.getvalue(), err.getvalue()


@dataclass
class Scenario:
    """A database filled by the real worker; helpers to run passes, mail and the CLI."""

    root: Path
    smtp: ScriptedSmtpServer
    dovecot: Dovecot
    account: Account
    db_url: str = ""
    clock: FakeClock = field(default_factory=lambda: FakeClock(T0))
    config: Path = field(init=False)
    scripted: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.db_url = self.db_url or f"sqlite:///{self.root}/nurture.db"
        self.config = self.write_config(self.db_url, self.root / "nurture.toml")

    def write_config(self, db_url: str, path: Path) -> Path:
        path.write_text(
            f'[database]\nurl = "{db_url}"\n[campaigns]\ndir = "{self.root}/campaigns"\n'
            f'[templates]\ndir = "{REPO}/templates"\n[outbound]\ntransport = "smtp"\n'
            f'[smtp]\nhost = "{self.smtp.host}"\nport = {self.smtp.port}\nconnections = 2\n'
            f'[inbound]\ntransport = "imap"\n[imap]\nhost = "{self.account.host}"\n'
            f'port = {self.account.port}\nusername = "{self.account.username}"\n'
            'poll_interval_s = 1.0\n[http]\nenabled = false\n[worker]\ngrace_s = 2.0\n',
            encoding="utf-8")
        return path

    def env(self) -> dict[str, str]:
        return {"NURTURE_SECRET_KEY": "test-secret-key-0123456789",
                "NURTURE_IMAP__PASSWORD": self.account.password}

    def app(self, config: Path | None = None) -> App:
        return App(load_settings(config or self.config, self.env()), clock=self.clock)

    def run_pass(self, config: Path | None = None) -> None:
        """One `nurture run --once` at the fake clock's time (on a clone's ``config``)."""
        app = self.app(config)
        try:
            assert asyncio.run(app.make_runner(once=True).run()) == 0
        finally:
            app.db.engine.dispose()

    def at(self, delta: timedelta) -> None:
        self.clock.at = T0 + delta

    def deliver(self, raw: bytes, after: timedelta = timedelta(minutes=5)) -> None:
        """Append a message to the watched INBOX, received ``after`` the fake now."""
        with self.dovecot.client(self.account) as client:
            client.append("INBOX", raw, msg_time=self.clock.now() + after)

    def sent(self, address: str) -> list[dict[str, str]]:
        """What the SMTP server accepted for ``address``, oldest first."""
        out = []
        for msg in self.smtp.messages:
            if address.lower() in (r.lower() for r in msg.rcpt_tos):
                head = BytesHeaderParser(policy=default_policy).parsebytes(msg.data)
                out.append({"message_id": str(head["Message-ID"]).strip("<>"),
                            "subject": str(head["Subject"]), "in_reply_to":
                            str(head.get("In-Reply-To", "")).strip("<>")})
        return out

    def cli(self, *args: str, config: Path | None = None) -> tuple[int, str, str]:
        """Run `nurture ARGS` in-process on the fake clock; (exit code, stdout, stderr)."""
        return run_cli(config or self.config, self.env(), self.clock, *args)

    def clone(self, where: Path) -> Path:
        """A copy of the database (for tests that change it); returns its config file."""
        where.mkdir(parents=True, exist_ok=True)
        # The SQLite backup API copies what is still in the WAL file too.
        with contextlib.closing(sqlite3.connect(self.root / "nurture.db")) as src, \
                contextlib.closing(sqlite3.connect(where / "nurture.db")) as dst:
            src.backup(dst)
        return self.write_config(f"sqlite:///{where}/nurture.db", where / "nurture.toml")


def play(sc: Scenario) -> dict[str, Any]:
    """Run the campaign: replies to step 1, an out-of-office, two bounces, an unsubscribe,
    a task that holds the sequence, a completion into the newsletter. Returns what the test
    scripted, for the checks."""
    csv = sc.root / "leads.csv"
    zones = {"gina@g.example": "Europe/Berlin"}
    csv.write_text("email,first_name,owner,timezone\n" + "".join(
        f"{e},{e.split('@')[0].title()},{OWNER},{zones.get(e, '')}\n" for e in LEADS),
        encoding="utf-8")
    sc.smtp.reject("zed@z.example")  # refused at SMTP time: 550 5.1.1
    code, out, err = sc.cli("init")
    assert code == 0, err
    code, out, err = sc.cli("leads", "import", str(csv), "--campaign", "drip")
    assert code == 0, out + err
    sc.run_pass()                                                        # day 0: hello x7
    hello = {e: sc.sent(e)[0]["message_id"] for e in LEADS if sc.sent(e)}
    sc.deliver(reply("Bob <bob@b.example>", "Re: Your report", "Sounds good, call me on "
                     "Tuesday?\r\n\r\nBob\r\n", hello["bob@b.example"]), timedelta(hours=1))
    sc.deliver(reply("Carol <carol@c.example>", "Out of office: Your report",
                     "I am out of the office until 4 March 2026 with limited access to email."
                     "\r\n", hello["carol@c.example"], "Auto-Submitted: auto-replied\r\n"))
    sc.deliver(bounce_report("dave@d.example", hello["dave@d.example"]))
    sc.at(timedelta(hours=2))
    sc.run_pass()                                                        # reads the inbox
    sc.at(timedelta(days=2))
    sc.run_pass()                                                        # follow-up x4
    follow = {e: sc.sent(e)[1]["message_id"] for e in LEADS if len(sc.sent(e)) > 1}
    # Alice answers the FIRST mail after the second one arrived: the touch answered counts.
    sc.deliver(reply("Alice <alice@a.example>", "Re: Your report", "Yes please, send me the "
                     "pricing.\r\n", hello["alice@a.example"]), timedelta(hours=1))
    sc.deliver(reply("Erin <erin@e.example>", "Re: More on the report", "Please unsubscribe "
                     "me from these emails.\r\n\r\nOn Monday Dana wrote:\r\n> Any questions?\r\n",
                     follow["erin@e.example"]))
    sc.at(timedelta(days=2, hours=2))
    sc.run_pass()
    sc.at(timedelta(days=3, hours=1))
    sc.run_pass()                     # carol's follow-up (after her return); frank's, gina's call
    sc.at(timedelta(days=10))
    sc.run_pass()                                                        # carol's call task
    # Frank's "last" step was due on day 4 but waits for his call task (wait_for_task).
    before = len(sc.sent("frank@f.example"))
    code, out, _ = sc.cli("tasks", "--json")
    open_tasks = json.loads(out)["tasks"]
    finish_frank(sc, open_tasks)
    return {"hello": hello, "follow": follow, "frank_mails_before_done": before,
            "open_tasks_day_10": open_tasks}


def finish_frank(sc: Scenario, tasks: list[dict[str, Any]]) -> None:
    """The rep completes frank's call; the last step goes out; frank moves to the newsletter
    and gets its issue."""
    frank = next(t for t in tasks if t["lead"] == "frank@f.example")
    code, _out, err = sc.cli("tasks", "done", str(frank["id"]), "--note", "left a voicemail")
    assert code == 0, err
    sc.at(timedelta(days=11, minutes=1))
    sc.run_pass()
    sc.at(timedelta(days=18, hours=12))   # 2026-03-20 21:00 UTC: the day everywhere
    sc.run_pass()


def step_of(message_id: str) -> str:
    """Our Message-IDs are ``nurture.<enrolment>.<step>.<install>@domain``."""
    return message_id.split(".")[2]


def report_json(sc: Scenario, *args: str) -> dict[str, Any]:
    code, out, err = sc.cli("report", "--json", *args)
    assert code == 0, err
    return json.loads(out)  # type: ignore[no-any-return]


def campaign(data: dict[str, Any], slug: str) -> dict[str, Any]:
    return next(c for c in data["campaigns"] if c["campaign"] == slug)


@pytest.fixture(scope="session")
def scenario(tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot) -> Iterator[Scenario]:
    """The campaign played once for the whole run; tests that change data use a clone."""
    root = tmp_path_factory.mktemp("scenario")
    write_campaigns(root / "campaigns")
    smtp = ScriptedSmtpServer().start()
    try:
        sc = Scenario(root, smtp, dovecot, dovecot.add_user())
        sc.scripted = play(sc)
        yield sc
    finally:
        smtp.close()
