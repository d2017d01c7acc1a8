"""Campaign folders: validation with file:line problems, `check`, `simulate`, `preview`."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest

from tests.workspace import REPO, email_template, settings_for, write_campaign
from worker.adapters.campaign_folders import load_catalog
from worker.cli import main

GOOD = """
name = "Good"
kind = "sequence"
sender = "Dana at Acme <dana@acme.example>"
on_finish = "news"

[window]
days = ["mon", "tue", "wed", "thu", "fri"]
hours = "09:00-17:00"
default_timezone = "America/New_York"
holidays = "US"

[[step]]
id = "report"
wait = "0"
template = "01.md"
window = false

[[step]]
id = "call"
day = 2
task = "Call {{ lead.first_name }}"

[[step]]
id = "follow"
wait = "2 business days"
template = "02.md"
thread = true
when = "lead.country == 'US'"
"""

NEWS = """
name = "News"
kind = "newsletter"
sender = "Acme <news@acme.example>"
"""


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    settings_for(tmp_path)  # copies templates/
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "nurture.toml").write_text('[logging]\nlevel = "ERROR"\n')
    write_campaign(tmp_path / "campaigns", "good", GOOD, {
        "01.md": email_template("Your report, {{ lead.first_name | default('friend') }}"),
        "02.md": email_template("Following up"),
    })
    write_campaign(tmp_path / "campaigns", "news", NEWS, {
        "issues/2026-12-new.md": "---\nsubject: News\nsend_on: 2026-12-01\n---\nHello.\n",
    })
    return tmp_path


def problems_of(folder: Path, slug: str) -> list[str]:
    catalog = load_catalog(folder, REPO / "templates")
    return [str(p) for p in catalog.problems.get(slug, [])]


def test_a_good_campaign_loads_with_its_steps(workspace: Path) -> None:
    catalog = load_catalog(workspace / "campaigns", workspace / "templates")
    assert catalog.problems == {}
    camp = catalog.get("good")
    assert [s.id for s in camp.steps] == ["report", "call", "follow"]
    assert [s.kind for s in camp.steps] == ["email", "task", "email"]
    assert camp.steps[1].task_kind == "call" and camp.steps[2].thread
    assert catalog.get("news").issues[0].send_on.isoformat() == "2026-12-01"


def test_every_problem_is_reported_with_its_file_and_line(tmp_path: Path) -> None:
    # Given a campaign with many mistakes
    write_campaign(tmp_path, "bad", """
        name = "Bad"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        on_finish = "nowhere"
        colour = "blue"

        [window]
        hours = "17:00-09:00"
        holidays = "XX"

        [[step]]
        id = "one"
        wait = "3 fortnights"
        template = "missing.md"

        [[step]]
        id = "two"
        wait = "1d"
        template = "broken.md"
        """, {"broken.md": "---\nsubject: Hi\n---\nline 4\n{% if x %}\nno end\n"})
    # When it is loaded
    found = problems_of(tmp_path, "bad")
    # Then each problem names the file and the line of the offending key
    toml = "bad/campaign.toml"
    expect = [
        (toml, 5, "unknown key 'colour'"),
        (toml, 8, "bad hours"),
        (toml, 9, "unknown holiday calendar"),
        (toml, 13, "bad duration '3 fortnights'"),
        (toml, 14, "template 'missing.md' not found"),
        ("broken.md", 5, "endif"),
    ]
    for file, line, text in expect:
        assert any(f"{file}:{line}: " in f and text in f for f in found), (file, line, found)


def test_malformed_toml_names_the_line(tmp_path: Path) -> None:
    write_campaign(tmp_path, "x", 'name = "X"\nkind = \n', {})
    [problem] = problems_of(tmp_path, "x")
    assert ":2: not valid TOML" in problem


def test_check_passes_good_campaigns_and_fails_broken_ones(workspace: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    write_campaign(workspace / "campaigns", "broken", """
        name = "Broken"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        on_finish = "nowhere"

        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        """, {"one.md": "---\nsubject: Hi\n---\nHello {{ lead.nickname }}\n"})
    capsys.readouterr()
    assert main(["check"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("broken/campaign.toml:4: on_finish points to 'nowhere'" in line for line in out)
    assert main(["check", "good"]) == 0


def test_check_finds_fields_missing_for_a_minimal_lead_and_bad_links(workspace: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    write_campaign(workspace / "campaigns", "links", """
        name = "Links"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        """, {"one.md": "---\nsubject: Hi\n---\nHi {{ lead.company }}\n\n[x](htp:/bad link)\n\n"
                        "[y](https://)\n"})
    assert main(["check", "links"]) == 1
    out = capsys.readouterr().out
    assert "links/one.md:4: lead field is missing: 'company'" in out
    assert "(for a lead with only an email address)" in out
    assert "links/one.md:8: link 'https://' has no valid host" in out


def test_check_flags_a_newsletter_without_unsubscribe_link_and_big_mails(
        workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "templates" / "bare.html").write_text("<html><body>{{ content }}</body></html>")
    (workspace / "templates" / "bare.txt").write_text("{{ content }}")
    write_campaign(workspace / "campaigns", "bare", NEWS + 'layout = "bare"\n', {
        "issues/2026-12-a.md": "---\nsubject: A\nsend_on: 2026-12-01\n---\nHello.\n",
        "issues/2026-12-b.md": "---\nsubject: B\nsend_on: 2026-12-02\n---\n" + "Big. " * 30000,
    })
    assert main(["check", "bare"]) == 1
    out = capsys.readouterr().out
    assert "bare/issues/2026-12-a.md:1: newsletter mail without an unsubscribe link" in out
    assert "bare/issues/2026-12-b.md:1: the mail is" in out and "over 100 KB" in out


def test_simulate_prints_one_line_per_touch_in_the_leads_zone(workspace: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    lead = workspace / "lead.json"
    lead.write_text('{"email": "ann@acme.test", "timezone": "Europe/Berlin", "country": "DE"}')
    assert main(["simulate", "good", "--start", "2026-03-06T16:30", "--lead", str(lead)]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-03-06T16:30:00+01:00  report  email",
        "2026-03-09T09:00:00+01:00  call  task",
        "2026-03-11T09:00:00+01:00  follow  skipped",
    ]
    assert main(["simulate", "good", "--start", "2026-03-06T16:30"]) == 0  # sample lead, US
    assert capsys.readouterr().out.splitlines() == [
        "2026-03-06T16:30:00-05:00  report  email",
        "2026-03-09T09:00:00-04:00  call  task",
        "2026-03-11T09:00:00-04:00  follow  email",
    ]


def test_preview_writes_eml_html_and_txt_with_the_worker_headers(workspace: Path) -> None:
    out = workspace / "deep" / "out"
    assert main(["preview", "good", "follow", "--out", str(out)]) == 0
    eml = email.message_from_bytes((out / "good-follow.eml").read_bytes(),
                                   policy=email.policy.default)
    assert eml["Subject"].startswith("Re: Your report")
    assert eml["In-Reply-To"] and eml["List-Unsubscribe"]
    assert "<html" in (out / "good-follow.html").read_text()
    assert (out / "good-follow.txt").read_text().startswith("Subject: Re: Your report, Sam\n\nHello Sam.")


def test_commands_name_unknown_campaigns_and_steps(workspace: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "nope"]) == 1
    assert "nope" in capsys.readouterr().err
    assert main(["preview", "good", "call"]) == 1
    assert "task, not an email" in capsys.readouterr().err
    assert main(["preview", "good", "zzz"]) == 1
    assert "email steps: report, follow" in capsys.readouterr().err


def test_shipped_campaigns_pass_and_the_broken_example_lists_all_six_problems(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # Given the repository's own campaigns and its deliberately broken example
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("NURTURE_LOGGING__LEVEL", "ERROR")
    # Then every shipped campaign passes
    assert main(["check"]) == 0
    assert "checked 6 campaign(s): 0 problem(s)" in capsys.readouterr().err
    # And the broken one reports each mistake once, as file:line: message
    assert main(["check", "examples/broken-campaign"]) == 1
    out = capsys.readouterr().out.splitlines()
    where = [line.split(": ", 1)[0] for line in out]
    assert where == ["examples/broken-campaign/03-syntax-error.md:7",
                     "examples/broken-campaign/04-no-default.md:7",
                     "examples/broken-campaign/campaign.toml:20",
                     "examples/broken-campaign/campaign.toml:21",
                     "examples/broken-campaign/campaign.toml:37",
                     "examples/broken-campaign/campaign.toml:38"], out


def test_simulate_sales_lead_follows_the_21_day_plan(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(REPO)
    assert main(["simulate", "sales-lead", "--start", "2026-03-02T10:00"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("  ", 2)[1:] for line in lines] == [
        ["research", "task"], ["intro", "email"], ["bump", "email"], ["linkedin", "task"],
        ["call", "task"], ["article", "email"], ["story", "email"], ["postcard", "task"],
        ["call-again", "task"], ["break-up", "email"]]
    assert lines[0].startswith("2026-03-03T10:00:00-05:00")  # day 1
    assert lines[-1].startswith("2026-03-23T10:00:00-04:00")  # day 21, after the DST change


def test_not_now_and_referral_campaigns_must_name_a_campaign(workspace: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    # Given a campaign whose reply-intent keys name campaigns that do not exist
    write_campaign(workspace / "campaigns", "intents", """
        name = "Intents"
        kind = "sequence"
        sender = "Dana <dana@acme.example>"
        not_now_campaign = "someday"
        referral_campaign = "friends"

        [[step]]
        id = "one"
        wait = "0"
        template = "one.md"
        """, {"one.md": email_template("Hi")})
    capsys.readouterr()
    # When it is checked, Then each is an error on its own line
    assert main(["check", "intents"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert any("intents/campaign.toml:4: not_now_campaign points to 'someday', which is not a "
               "campaign" in line for line in out), out
    assert any("intents/campaign.toml:5: referral_campaign points to 'friends'" in line
               for line in out), out


def test_re_engage_names_the_date_the_lead_asked_for(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    # Given the shipped re-engage campaign, which sales-lead names for a "not now"
    monkeypatch.chdir(REPO)
    monkeypatch.setenv("NURTURE_LOGGING__LEVEL", "ERROR")
    catalog = load_catalog(REPO / "campaigns", REPO / "templates")
    assert catalog.campaigns["sales-lead"].not_now_campaign == "re-engage"
    assert [s.id for s in catalog.campaigns["re-engage"].steps] == ["back", "nudge"]
    lead = tmp_path / "lead.json"
    lead.write_text('{"email": "ann@example.com", "first_name": "Ann", '
                    '"fields": {"resume_on": "2027-03-01", "resume_month": "March 2027"}}')
    # When its first step is previewed for a lead that named March, and for one that did not
    assert main(["preview", "re-engage", "back", "--lead", str(lead),
                 "--out", str(tmp_path / "named")]) == 0
    lead.write_text('{"email": "bo@example.com"}')
    assert main(["preview", "re-engage", "back", "--lead", str(lead),
                 "--out", str(tmp_path / "none")]) == 0
    # Then the date is in the mail, and a default stands in without one
    named = (tmp_path / "named" / "re-engage-back.txt").read_text()
    assert "You asked me to get back to you in March 2027" in " ".join(named.split())
    plain = (tmp_path / "none" / "re-engage-back.txt").read_text()
    assert "You asked me to get back to you in a few months" in " ".join(plain.split())
