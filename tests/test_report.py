"""`nurture report` on a database filled by running real campaigns.

The scenario runs the real worker (``Runner(once=True)``) against a real SMTP server and a
real Dovecot, with a controllable clock: leads are imported with the CLI, replies are
appended to the IMAP inbox with their INTERNALDATE on the fake clock, and time moves forward
between passes. The report's numbers are checked against what the SMTP server received and
the replies the test scripted, then against a golden file, then as an HTML page in Chromium.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from tests.scenario import (
    ARTIFACTS,
    GOLDEN,
    LEADS,
    REPO,
    T0,
    FakeClock,
    Scenario,
    campaign,
    play,
    reply,
    report_json,
    run_cli,
    step_of,
    write_campaigns,
)
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from worker.app import App
from worker.config import load_settings

pytestmark = pytest.mark.dovecot


def test_report_numbers_match_what_the_servers_saw(scenario: Scenario) -> None:
    # Given a database filled by the real worker, and what the SMTP server accepted
    sent_per_step: dict[str, int] = {}
    for lead in LEADS:
        for mail in scenario.sent(lead):
            step = step_of(mail["message_id"])
            sent_per_step[step] = sent_per_step.get(step, 0) + 1
    # When the report is asked for as JSON
    data = report_json(scenario)
    # Then every loaded campaign is there, steps in campaign order
    assert [c["campaign"] for c in data["campaigns"]] == ["drip", "news", "quiet"]
    drip = campaign(data, "drip")
    steps = {s["step"]: s for s in drip["steps"]}
    assert list(steps) == ["hello", "follow-up", "call", "last"]
    # and "sent" is what the server accepted, per step (zed was refused at SMTP time)
    for step in ("hello", "follow-up", "last"):
        assert steps[step]["sent"] == sent_per_step[step], step
    assert steps["hello"]["sent"] == 7 and steps["follow-up"]["sent"] == 5
    # and the two human replies both answered the first mail (alice wrote after the second
    # one arrived): counted at "hello", never at the last mail sent
    assert steps["hello"]["replied"] == 2 and steps["follow-up"]["replied"] == 0
    assert drip["replies_by_touch"] == {"1": 2}
    assert steps["hello"]["reply_rate"] == round(2 / 7, 4)
    # and by intent (issue 14): bob asks for a call, alice for the pricing, both interested
    assert steps["hello"]["intents"] == {"interested": 2, "not_now": 0, "not_interested": 0,
                                         "referral": 0, "wrong_person": 0, "neutral": 0}
    assert steps["hello"]["positive_rate"] == round(2 / 7, 4)
    assert drip["totals"]["positive_rate"] == round(2 / drip["totals"]["sent"], 4)
    # and the out-of-office is an auto-reply, not a reply
    assert steps["hello"]["auto_replied"] == 1
    # and one bounce report (hard) plus one refusal at SMTP time
    assert steps["hello"]["bounced"] == 2
    assert steps["hello"]["bounces"] == {"hard": 1, "soft": 0, "policy": 0, "smtp": 1}
    # and erin's unsubscribe answered the second mail
    assert steps["follow-up"]["unsubscribed"] == 1 and steps["hello"]["unsubscribed"] == 0
    # and the call task: one done (frank), two still open (carol, gina)
    assert (steps["call"]["open_tasks"], steps["call"]["done_tasks"]) == (2, 1)
    # and frank completed after the last step and moved to the newsletter, which he got
    assert steps["last"]["completed"] == 1 and drip["moved_to_newsletter"] == 1
    assert drip["funnel"] == {"enrolled": 8, "touched": 7, "replied": 2, "completed": 1,
                              "newsletter": 1}
    news = campaign(data, "news")
    assert [(s["step"], s["sent"]) for s in news["steps"]] == [("2026-03-20-spring", 1)]
    assert len([m for m in scenario.sent("frank@f.example") if "spring" in m["message_id"]]) == 1
    # and the median time to first reply: bob after 1 h, alice after 49 h
    assert drip["median_hours_to_first_reply"] == 25.0
    # and a loaded campaign without any data still appears, with its steps at zero
    quiet = campaign(data, "quiet")
    assert [(s["step"], s["sent"], s["reply_rate"]) for s in quiet["steps"]] == [("only", 0, 0.0)]


def test_report_json_matches_the_golden_file(scenario: Scenario) -> None:
    # Given the scenario's report (its clock is fixed, so no time needs normalising)
    data = report_json(scenario)
    golden = GOLDEN / "report.json"
    if os.environ.get("NURTURE_UPDATE_GOLDEN"):
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    # Then it is exactly the reviewed golden report
    assert data == json.loads(golden.read_text(encoding="utf-8"))
    # and every step carries exactly the keys the spec requires (more are allowed)
    required = {"step", "sent", "replied", "auto_replied", "bounced", "unsubscribed",
                "completed", "reply_rate"}
    for c in data["campaigns"]:
        assert {"campaign", "steps", "replies_by_touch"} <= set(c)
        for s in c["steps"]:
            assert required <= set(s)
            assert all(isinstance(s[k], int) for k in required - {"step", "reply_rate"})


def test_report_one_campaign_and_unknown_campaign(scenario: Scenario) -> None:
    # When one campaign is asked for
    data = report_json(scenario, "--campaign", "news")
    # Then only that one is reported
    assert [c["campaign"] for c in data["campaigns"]] == ["news"]
    # When an unknown one is asked for, it is a user error naming the known ones
    code, _out, err = scenario.cli("report", "--campaign", "nope")
    assert code == 1 and "nope" in err and "drip" in err and "Traceback" not in err


def test_report_in_the_terminal(scenario: Scenario) -> None:
    # When the report is printed for a person
    code, out, err = scenario.cli("report", "--campaign", "drip")
    # Then it shows each step with its numbers, the replies by touch and the median
    assert code == 0, err
    lines = out.splitlines()
    hello = next(line for line in lines if "hello" in line)
    assert "28.6%" in hello and "hard 1, smtp 1" in hello
    assert "replies by touch number: #1: 2" in out
    assert "median time to first reply: 25.0 hours" in out
    assert "enrolled 8, touched 7, replied 2, completed 1 (1 moved to news)" in out


def test_report_on_an_empty_database_lists_the_loaded_campaigns(scenario: Scenario,
                                                                tmp_path: Path) -> None:
    # Given a fresh database beside the same campaigns
    config = scenario.write_config(f"sqlite:///{tmp_path}/empty.db", tmp_path / "n.toml")
    assert scenario.cli("init", config=config)[0] == 0
    # When the report is asked for
    code, out, err = scenario.cli("report", "--json", config=config)
    # Then every loaded campaign is there with zero counts
    assert code == 0, err
    data = json.loads(out)
    assert [c["campaign"] for c in data["campaigns"]] == ["drip", "news", "quiet"]
    drip = campaign(data, "drip")
    assert all(s["sent"] == 0 and s["reply_rate"] == 0.0 for s in drip["steps"])
    assert drip["replies_by_touch"] == {} and drip["median_hours_to_first_reply"] is None
    assert [s["step"] for s in campaign(data, "news")["steps"]] == ["2026-03-20-spring"]


@pytest.fixture(scope="module")
def pg_scenario(tmp_path_factory: pytest.TempPathFactory, dovecot: Dovecot,
                pg_cluster: Any) -> Iterator[Scenario]:
    root = tmp_path_factory.mktemp("report-pg")
    write_campaigns(root / "campaigns")
    url = pg_cluster.create_database("t_report")
    smtp = ScriptedSmtpServer().start()
    try:
        sc = Scenario(root, smtp, dovecot, dovecot.add_user(), db_url=url)
        sc.scripted = play(sc)
        yield sc
    finally:
        smtp.close()
        with contextlib.suppress(Exception):
            pg_cluster.drop_database("t_report")


@pytest.mark.postgres
def test_report_on_postgresql_is_the_same_report(pg_scenario: Scenario) -> None:
    # Given the same campaign played against PostgreSQL
    # When the report is asked for
    data = report_json(pg_scenario)
    # Then it is the same golden report as on SQLite
    assert data == json.loads((GOLDEN / "report.json").read_text(encoding="utf-8"))


CHROMIUM = Path("/usr/bin/chromium")


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.chromium
@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is not installed "
                    "(apt-get install chromium) - the HTML report is checked in a real browser")
def test_html_report_renders_its_charts_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    # Given the HTML report of the scenario
    page = tmp_path / "report.html"
    code, _out, err = scenario.cli("report", "--html", str(page))
    assert code == 0, err
    html = page.read_text(encoding="utf-8")
    # Then it is self-contained: no script, nothing fetched from elsewhere
    assert "<script" not in html.lower()
    assert not any(f'{attr}="http' in html for attr in ("src", "href"))
    assert "@import" not in html and "url(http" not in html
    # and each campaign has its four charts, drawn as inline SVG
    assert html.count('<figure class="" data-chart=') == 5 * 3
    assert html.count("<svg") == 15
    # When Chromium renders it
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "report.png"
    shot.unlink(missing_ok=True)
    shutil.copy(page, ARTIFACTS / "report.html")
    result = chromium("--screenshot=" + str(shot), "--window-size=1200,2400",
                      "--enable-logging=stderr", "--v=0", page.as_uri(), profile=tmp_path / "p1")
    # Then no console error was logged, and the screenshot shows the charts' colours
    assert "CONSOLE" not in result.stderr and "Uncaught" not in result.stderr, result.stderr
    assert shot.exists(), result.stderr
    from matplotlib.image import imread
    pixels = (imread(str(shot))[:, :, :3] * 255).round()
    blue = ((abs(pixels - (0x2B, 0x6C, 0xB0)) < 12).all(axis=2)).sum()
    green = ((abs(pixels - (0x2F, 0x85, 0x5A)) < 12).all(axis=2)).sum()
    assert blue > 2000 and green > 500, (blue, green)
    # and the DOM Chromium built holds every chart as an SVG with its title
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "p2").stdout
    assert dom.count("<svg") == 15
    for title in ("Funnel", "Replies by touch number", "Reply rate per step",
                  "Replies by intent per step", "Sends and replies per day"):
        assert dom.count(title) == 3, title


def test_report_with_the_embedded_maildirs(tmp_path: Path) -> None:
    """The embedded default: mail written to a Maildir outbox, replies dropped as .eml files
    into the Maildir inbox (their file time is when they arrived)."""
    # Given the drip campaign, three leads, and both Maildirs
    write_campaigns(tmp_path / "campaigns")
    config = tmp_path / "nurture.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path}/n.db"\n[campaigns]\n'
        f'dir = "{tmp_path}/campaigns"\n[templates]\ndir = "{REPO}/templates"\n'
        f'[outbound]\ntransport = "maildir"\nmaildir = "{tmp_path}/outbox"\n'
        f'[inbound]\ntransport = "maildir"\nmaildir = "{tmp_path}/inbox"\n'
        '[http]\nenabled = false\n[notify]\nforward_replies = false\n', encoding="utf-8")
    env = {"NURTURE_SECRET_KEY": "test-secret-key-0123456789"}
    clock = FakeClock(T0)

    def run() -> None:
        app = App(load_settings(config, env), clock=clock)
        assert asyncio.run(app.make_runner(once=True).run()) == 0
        app.db.engine.dispose()

    def outbox() -> dict[str, str]:
        """Message-ID -> recipient of every file the worker wrote."""
        found = {}
        for path in sorted((tmp_path / "outbox" / "new").iterdir()):
            head = BytesHeaderParser(policy=default_policy).parsebytes(path.read_bytes())
            found[str(head["Message-ID"]).strip("<>")] = str(head["To"])
        return found

    def drop(raw: bytes, name: str) -> None:
        path = tmp_path / "inbox" / "new" / name
        path.write_bytes(raw)
        arrived = (clock.now() + timedelta(hours=1)).timestamp()
        os.utime(path, (arrived, arrived))

    app = App(load_settings(config, env), clock=clock)
    app.db.migrate()
    for email in ("ann@a.example", "ben@b.example", "cat@c.example"):
        app.service.intake({"email": email}, campaign="drip")
    app.db.engine.dispose()
    run()
    hello = {to: mid for mid, to in outbox().items()}
    clock.at = T0 + timedelta(days=2)
    run()
    # When ann answers the first mail after the second one, and ben is out of office
    drop(reply("ann@a.example", "Re: Your report", "Sounds good.\r\n",
               hello["ann@a.example"]), "1.ann")
    drop(reply("ben@b.example", "Automatic reply: Your report", "I am out of the office "
               "until 9 March 2026.\r\n", hello["ben@b.example"],
               "Auto-Submitted: auto-replied\r\n"), "2.ben")
    clock.at = T0 + timedelta(days=2, hours=2)
    run()
    code, out, err = run_cli(config, env, clock, "report", "--json", "--campaign", "drip")
    # Then the report counts what the outbox holds and the replies dropped in
    assert code == 0, err
    written = outbox()
    data = json.loads(out)
    steps = {s["step"]: s for s in data["campaigns"][0]["steps"]}
    assert steps["hello"]["sent"] == sum(1 for mid in written if step_of(mid) == "hello") == 3
    assert steps["follow-up"]["sent"] == sum(1 for mid in written if step_of(mid) == "follow-up")
    assert (steps["hello"]["replied"], steps["hello"]["auto_replied"]) == (1, 1)
    assert data["campaigns"][0]["replies_by_touch"] == {"1": 1}
    assert data["campaigns"][0]["median_hours_to_first_reply"] == 49.0
    assert sorted(p.name.split(":")[0] for p in (tmp_path / "inbox" / "cur").iterdir()) == \
        ["1.ann", "2.ben"]
