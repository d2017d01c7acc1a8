"""`nurture doctor` against a real DNS server (NSD on a loopback port) with good, missing and
broken records; the pure rules with a dict for the odd cases."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.nsd import Nsd
from worker.adapters.dns import DnsResolver
from worker.commands.doctor import run_doctor, sending_domains
from worker.config import load_settings
from worker.domain.dns_policy import Answer, Status, check_dmarc, check_spf, diagnose
from worker.errors import UserError

REPO = Path(__file__).resolve().parent.parent

ZONES = {
    "good.test": """
@ IN TXT "v=spf1 ip4:192.0.2.10 include:_spf.good.test -all"
selector1._domainkey IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" "wz2Q8mN1QIDAQAB"
_dmarc IN TXT "v=DMARC1; p=reject; rua=mailto:dmarc@good.test"
@ IN MX 10 mx1.good.test.
@ IN MX 20 mx2.good.test.
""",
    "broken.test": """
@ IN TXT "v=spf1 +all"
@ IN TXT "v=spf1 -all"
s1._domainkey IN TXT "v=DKIM1; k=rsa; p="
_dmarc IN TXT "v=DMARC1; p=none"
@ IN MX 0 .
""",
    "missing.test": """
www IN A 192.0.2.1
""",
    "org.test": """
_dmarc IN TXT "v=DMARC1; p=reject; sp=quarantine"
mail IN TXT "v=spf1 mx -all"
k1._domainkey.mail IN TXT "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC"
mail IN MX 5 mx.org.test.
""",
    "replies.test": """
@ IN MX 10 in.replies.test.
""",
}


@pytest.fixture(scope="module")
def nsd() -> Iterator[Nsd]:
    with Nsd(ZONES) as server:
        yield server


@pytest.fixture
def resolver(nsd: Nsd) -> DnsResolver:
    return DnsResolver((nsd.nameserver,), timeout_s=5.0)


def _by_check(findings: list) -> dict[str, list]:  # type: ignore[type-arg]
    out: dict[str, list] = {}  # type: ignore[type-arg]
    for f in findings:
        out.setdefault(f.check, []).append(f)
    return out


# -- the resolver against NSD ---------------------------------------------------------------

def test_resolver_reads_txt_split_strings_and_mx(resolver: DnsResolver) -> None:
    key = resolver("selector1._domainkey.good.test", "TXT")
    assert key.records == ("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"
                           "wz2Q8mN1QIDAQAB",)
    assert sorted(resolver("good.test", "MX").records) == ["10 mx1.good.test.",
                                                           "20 mx2.good.test."]
    assert resolver("nothing.good.test", "TXT") == Answer()  # NXDOMAIN
    assert resolver("missing.test", "MX") == Answer()  # no records of the type


def test_resolver_reports_an_unreachable_server_as_an_error() -> None:
    from tests.servers._util import free_port

    answer = DnsResolver((f"127.0.0.1:{free_port()}",), timeout_s=0.5)("good.test", "TXT")
    assert answer.records == () and answer.error


# -- diagnose against real records ----------------------------------------------------------

def test_a_good_domain_passes_everything(resolver: DnsResolver) -> None:
    findings = diagnose("good.test", resolver)
    assert [(f.check, f.status) for f in findings] == [
        ("spf", Status.PASS), ("dkim", Status.PASS), ("dmarc", Status.PASS),
        ("alignment", Status.PASS), ("mx", Status.PASS)]
    assert findings[-1].message == "10 mx1.good.test, 20 mx2.good.test"


def test_a_broken_domain_fails_with_a_fix_for_each(resolver: DnsResolver) -> None:
    checks = _by_check(diagnose("broken.test", resolver))
    assert checks["spf"][0].status is Status.FAIL and "2 SPF records" in checks["spf"][0].message
    assert checks["dkim"][0].status is Status.FAIL and "revoked" in checks["dkim"][0].message
    assert checks["dmarc"][0].status is Status.WARN and "p=none" in checks["dmarc"][0].message
    assert checks["mx"][0].status is Status.FAIL and "null MX" in checks["mx"][0].message
    assert checks["alignment"][0].status is Status.FAIL
    assert all(f.fix for fs in checks.values() for f in fs if f.status is not Status.PASS)


def test_a_domain_without_records_fails_each_check(resolver: DnsResolver) -> None:
    checks = _by_check(diagnose("missing.test", resolver))
    assert {c: [f.status for f in fs] for c, fs in checks.items()} == {
        "spf": [Status.FAIL], "dkim": [Status.FAIL], "dmarc": [Status.FAIL],
        "alignment": [Status.FAIL], "mx": [Status.FAIL]}
    assert "_dmarc.missing.test" in checks["dmarc"][0].fix


def test_configured_selectors_and_the_org_domain_dmarc_policy(resolver: DnsResolver) -> None:
    checks = _by_check(diagnose("mail.org.test", resolver, selectors=["k1", "k2"]))
    assert [(f.status, f.message) for f in checks["dkim"]] == [
        (Status.PASS, "key at k1._domainkey.mail.org.test"),
        (Status.FAIL, "no key at k2._domainkey.mail.org.test")]
    assert checks["dmarc"][0].status is Status.PASS
    assert checks["dmarc"][0].message == "p=quarantine at _dmarc.org.test"


def test_the_reply_domain_is_checked_for_mx(resolver: DnsResolver) -> None:
    mx = diagnose("broken.test", resolver, reply_domain="replies.test")[-1]
    assert (mx.domain, mx.status) == ("replies.test", Status.PASS)


# -- the command ----------------------------------------------------------------------------

def _settings(tmp_path: Path, text: str, nsd: Nsd):  # type: ignore[no-untyped-def]
    path = tmp_path / "nurture.toml"
    path.write_text(text)
    return load_settings(path, environ={"NURTURE_DNS__NAMESERVERS": nsd.nameserver})


def test_domains_come_from_the_configured_addresses(tmp_path: Path, nsd: Nsd) -> None:
    s = _settings(tmp_path, """
[smtp]
address = "Acme <hello@good.test>"
[mailboxes.sales]
address = "Sam <sam@mail.org.test>"
dkim_selectors = ["k1"]
[mailboxes.sales.imap]
username = "sam@replies.test"
""", nsd)
    assert sending_domains(s) == {
        "good.test": {"reply_domain": "good.test", "selectors": []},
        "mail.org.test": {"reply_domain": "replies.test", "selectors": ["k1"]}}
    out = io.StringIO()
    assert run_doctor([], s, DnsResolver(s.dns.nameservers), as_json=False, out=out) == 0
    text = out.getvalue()
    assert text.startswith("good.test\n  pass  spf ") and "\nmail.org.test\n" in text
    assert text.rstrip().endswith("0 failed")


def test_no_domain_at_all_is_a_user_error(tmp_path: Path, nsd: Nsd) -> None:
    s = _settings(tmp_path, "", nsd)
    with pytest.raises(UserError, match="no sending domain"):
        run_doctor([], s, DnsResolver(s.dns.nameservers), as_json=False, out=io.StringIO())
    with pytest.raises(UserError, match="not a domain name"):
        run_doctor(["-rf"], s, DnsResolver(s.dns.nameservers), as_json=False,
                   out=io.StringIO())


def _cli(tmp_path: Path, nsd: Nsd, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "nurture.toml").write_text("")
    env = {**os.environ, "NURTURE_CONFIG": str(tmp_path / "nurture.toml"),
           "NURTURE_DNS__NAMESERVERS": nsd.nameserver, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "worker", "doctor", *args], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=60)


def test_cli_exits_1_on_a_failure_and_prints_the_fix(tmp_path: Path, nsd: Nsd) -> None:
    done = _cli(tmp_path, nsd, "good.test", "broken.test")
    assert done.returncode == 1, done.stderr
    assert "  FAIL  spf       2 SPF records" in done.stdout
    assert "fix: merge them into one record" in done.stdout


def test_cli_json_for_a_good_domain_exits_0(tmp_path: Path, nsd: Nsd) -> None:
    done = _cli(tmp_path, nsd, "good.test", "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    assert {f["status"] for f in report["domains"][0]["findings"]} == {"pass"}


# -- pure rules for cases not worth a zone --------------------------------------------------

@pytest.mark.parametrize(("record", "status", "words"), [
    ("v=spf1 -all", Status.PASS, "v=spf1 -all"),
    ("v=spf1 include:a ~all", Status.PASS, "~all"),
    ("v=spf1 include:a ?all", Status.WARN, "neutral"),
    ("v=spf1 include:a", Status.WARN, "no 'all'"),
    ("v=spf1 redirect=_spf.example.com", Status.PASS, "redirect"),
    ("v=spf1 all", Status.FAIL, "lets anyone"),
    (" ".join(["v=spf1"] + [f"include:i{n}.example" for n in range(11)] + ["-all"]),
     Status.FAIL, "11 DNS lookups"),
    ("v=spf10 -all", Status.FAIL, "no SPF record"),
])
def test_spf_rules(record: str, status: Status, words: str) -> None:
    finding = check_spf("x.example", Answer((record,)))
    assert finding.status is status and words in finding.message


@pytest.mark.parametrize(("record", "status", "words"), [
    ("v=DMARC1; p=reject; pct=50", Status.WARN, "50%"),
    ("v=DMARC1; rua=mailto:a@x.example", Status.FAIL, "no valid policy"),
    ("v=DMARC1; p=quarantine", Status.PASS, "p=quarantine"),
])
def test_dmarc_rules(record: str, status: Status, words: str) -> None:
    finding = check_dmarc("x.example", lambda name, t: Answer((record,)))
    assert finding.status is status and words in finding.message


def test_a_lookup_error_warns_instead_of_failing() -> None:
    findings = diagnose("x.example", lambda name, t: Answer(error="timed out"))
    checks = _by_check(findings)
    for check in ("spf", "dkim", "dmarc", "alignment", "mx"):
        assert all(f.status is Status.WARN for f in checks[check]), check
