"""A delivery report that comes back within the second of the mail it returns is listed after
that mail by `nurture lead show` (IMAP INTERNALDATE has whole seconds; issue 11,
deployment 10). Real Dovecot, real SMTP server, the worker's passes and the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.scenario import FakeClock, Scenario, bounce_report
from tests.servers.dovecot import Dovecot
from tests.servers.smtp import ScriptedSmtpServer
from tests.workspace import TWO_STEPS, email_template, write_campaign

pytestmark = pytest.mark.dovecot
SENT_AT = datetime(2026, 3, 2, 14, 0, 0, 600_000, tzinfo=UTC)
LEAD = "gone@d.example"


@pytest.fixture
def sc(tmp_path: Path, dovecot: Dovecot) -> Iterator[Scenario]:
    write_campaign(tmp_path / "campaigns", "drip", TWO_STEPS, {"one.md": email_template("Your report")})
    with ScriptedSmtpServer().start() as smtp:
        yield Scenario(tmp_path, smtp, dovecot, dovecot.add_user(), clock=FakeClock(SENT_AT))


def test_a_bounce_within_the_second_is_listed_after_the_mail(sc: Scenario) -> None:
    # Given a mail sent 0.6 s into a second
    assert sc.cli("init")[0] == 0
    csv = sc.root / "leads.csv"
    csv.write_text(f"email,first_name\n{LEAD},Gone\n", encoding="utf-8")
    assert sc.cli("leads", "import", str(csv), "--campaign", "drip")[0] == 0
    sc.run_pass()
    (sent,) = sc.sent(LEAD)
    # When its bounce arrives in the same second (INTERNALDATE 14:00:00) and is read
    sc.deliver(bounce_report(LEAD, sent["message_id"]), after=timedelta(0))
    sc.clock.at = SENT_AT + timedelta(milliseconds=300)
    sc.run_pass()
    # Then the timeline lists the mail, then its bounce
    code, out, _ = sc.cli("lead", "show", LEAD)
    assert code == 0
    assert "email sent" in out and "mail in #1: bounce" in out, out
    assert out.index("email sent") < out.index("mail in #1: bounce")
