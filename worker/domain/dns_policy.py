"""What a sending domain's DNS must say for mail to arrive and replies to come back. Pure.

``diagnose`` asks a ``Lookup`` (the DNS adapter, or a dict in tests) for the SPF, DKIM,
DMARC and MX records of one domain and judges each: pass, warn or fail, with what to fix.
The rules follow RFC 7208 (SPF: one record, at most 10 lookups, never ``+all``), RFC 6376
(DKIM keys at ``SELECTOR._domainkey``), RFC 7489 (DMARC at ``_dmarc``, alignment of the
From domain) and RFC 7505 (null MX), and Gmail's and Yahoo's bulk-sender rules (SPF or
DKIM aligned, a DMARC record).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


class Status(StrEnum):
    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"


@dataclass(frozen=True)
class Answer:
    """One DNS answer: the record texts (TXT strings joined; MX as ``"10 host."``), or the
    error that kept us from knowing (timeout, SERVFAIL). No records and no error: none exist."""

    records: tuple[str, ...] = ()
    error: str = ""


@dataclass(frozen=True)
class Finding:
    check: str  # spf | dkim | dmarc | alignment | mx
    domain: str
    status: Status
    message: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "status": str(self.status)}


Lookup = Callable[[str, str], Answer]  # (name, "TXT" | "MX") -> Answer

COMMON_SELECTORS = ("google", "selector1", "selector2", "default", "k1", "s1", "s2")
_SPF = re.compile(r"v=spf1(\s|$)", re.I)
_DMARC = re.compile(r"v=DMARC1\s*(;|$)", re.I)
_LOOKUP_TERMS = re.compile(r"^[+\-~?]?(include:|a$|a[:/]|mx$|mx[:/]|ptr|exists:|redirect=)", re.I)


def diagnose(domain: str, lookup: Lookup, *, reply_domain: str | None = None,
             selectors: Sequence[str] = ()) -> list[Finding]:
    """Every finding for ``domain``; ``selectors`` empty means try the common ones."""
    spf = check_spf(domain, lookup(domain, "TXT"))
    chosen = tuple(selectors) or COMMON_SELECTORS
    dkim = check_dkim(domain, {s: lookup(f"{s}._domainkey.{domain}", "TXT") for s in chosen},
                      configured=bool(selectors))
    dmarc = check_dmarc(domain, lookup)
    spf_ok = spf.status is not Status.FAIL and not spf.message.startswith("could not")
    dkim_ok = any(f.status is Status.PASS for f in dkim)
    unknown = any(f.message.startswith("could not") for f in (spf, *dkim))
    alignment = check_alignment(domain, spf_ok, dkim_ok)
    if alignment.status is Status.FAIL and unknown:
        alignment = Finding("alignment", domain, Status.WARN, "could not tell: SPF or DKIM "
                            "did not resolve")
    return [spf, *dkim, dmarc, alignment,
            check_mx(reply_domain or domain, lookup(reply_domain or domain, "MX"))]


def check_spf(domain: str, answer: Answer) -> Finding:
    """One ``v=spf1`` TXT record, ending in ``-all`` or ``~all``, within 10 DNS lookups."""
    if answer.error:
        return Finding("spf", domain, Status.WARN, f"could not look up TXT: {answer.error}")
    records = [r for r in answer.records if _SPF.match(r.strip())]
    add = f'add a TXT record at {domain}: "v=spf1 include:<your provider> -all"'
    if not records:
        return Finding("spf", domain, Status.FAIL, "no SPF record", add)
    if len(records) > 1:
        return Finding("spf", domain, Status.FAIL, f"{len(records)} SPF records: receivers "
                       "treat that as an error (RFC 7208 4.5)", "merge them into one record")
    record = records[0].strip()
    terms = record.split()[1:]
    lookups = sum(1 for t in terms if _LOOKUP_TERMS.match(t))
    alls = [t for t in terms if t.lower().lstrip("+-~?") == "all"]
    if any(t.lower() in ("all", "+all") for t in alls):
        return Finding("spf", domain, Status.FAIL, f"{record!r} lets anyone send as {domain}",
                       "end the record with -all (or ~all)")
    if lookups > 10:
        return Finding("spf", domain, Status.FAIL, f"{lookups} DNS lookups (the limit is 10): "
                       "receivers treat that as an error", "flatten includes you do not need")
    if not alls and not any(t.lower().startswith("redirect=") for t in terms):
        return Finding("spf", domain, Status.WARN, f"{record!r} has no 'all' term: other "
                       "senders are neutral", "end the record with -all (or ~all)")
    if alls and alls[-1].startswith("?"):
        return Finding("spf", domain, Status.WARN, f"{record!r} ends in ?all (neutral)",
                       "end the record with -all (or ~all)")
    return Finding("spf", domain, Status.PASS, record)


def check_dkim(domain: str, answers: dict[str, Answer], *, configured: bool) -> list[Finding]:
    """A public key at each configured selector; with the common ones, at least one."""
    found, revoked, errors = [], [], []
    for selector, answer in answers.items():
        text = "".join(answer.records)
        if answer.error:
            errors.append(f"{selector}: {answer.error}")
        elif re.search(r"(^|;)\s*p=\s*[A-Za-z0-9+/=]", text):
            found.append(selector)
        elif re.search(r"(^|;)\s*p=\s*(;|$)", text):
            revoked.append(selector)
    publish = f"publish the key your mail provider gives you at SELECTOR._domainkey.{domain}"
    findings = [Finding("dkim", domain, Status.PASS, f"key at {s}._domainkey.{domain}")
                for s in found]
    findings += [Finding("dkim", domain, Status.WARN if found else Status.FAIL,
                         f"the key at {s}._domainkey.{domain} is revoked (empty p=)",
                         "remove the selector or publish its key") for s in revoked]
    if configured:
        missing = [s for s in answers if s not in found and s not in revoked
                   and not any(e.startswith(f"{s}:") for e in errors)]
        findings += [Finding("dkim", domain, Status.FAIL, f"no key at {s}._domainkey.{domain}",
                             publish) for s in missing]
    elif not found and not revoked:
        findings.append(Finding(
            "dkim", domain, Status.WARN if errors else Status.FAIL,
            f"no DKIM key at the common selectors ({', '.join(answers)})",
            f"{publish}, and name it in mailboxes.NAME.dkim_selectors"))
    findings += [Finding("dkim", domain, Status.WARN, f"could not look up {e}") for e in errors]
    return findings


def organizational_domain(domain: str) -> str:
    """The last two labels: where a subdomain's DMARC policy falls back to.

    A heuristic without the Public Suffix List (``a.example.co.uk`` gives ``co.uk``): used
    only as a second place to look, after the domain itself.
    """
    labels = domain.rstrip(".").split(".")
    return ".".join(labels[-2:])


def dmarc_tags(record: str) -> dict[str, str]:
    """``v=DMARC1; p=reject; adkim=s`` -> {"v": "DMARC1", "p": "reject", "adkim": "s"}."""
    tags: dict[str, str] = {}
    for part in record.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            tags[key.strip().lower()] = value.strip()
    return tags


def check_dmarc(domain: str, lookup: Lookup) -> Finding:
    """A DMARC record at ``_dmarc.DOMAIN`` (or the organizational domain) with a policy."""
    where = f"_dmarc.{domain}"
    answer = lookup(where, "TXT")
    org = organizational_domain(domain)
    policy_key = "p"
    if not answer.error and not _dmarc_records(answer) and org != domain:
        where, policy_key = f"_dmarc.{org}", "sp"
        answer = lookup(where, "TXT")
    if answer.error:
        return Finding("dmarc", domain, Status.WARN, f"could not look up {where}: "
                       f"{answer.error}")
    records = _dmarc_records(answer)
    if not records:
        return Finding("dmarc", domain, Status.FAIL, f"no DMARC record at _dmarc.{domain}",
                       f'add a TXT record at _dmarc.{domain}: "v=DMARC1; p=none; '
                       f'rua=mailto:dmarc@{domain}" (Gmail and Yahoo require one)')
    if len(records) > 1:
        return Finding("dmarc", domain, Status.FAIL, f"{len(records)} DMARC records at {where}:"
                       " receivers ignore them all", "keep one")
    tags = dmarc_tags(records[0])
    policy = (tags.get(policy_key) or tags.get("p") or "").lower()
    if policy not in ("none", "quarantine", "reject"):
        return Finding("dmarc", domain, Status.FAIL, f"{records[0]!r} at {where} has no valid "
                       "policy (p=)", "set p=none, p=quarantine or p=reject")
    if policy == "none":
        return Finding("dmarc", domain, Status.WARN, f"p=none at {where}: monitoring only",
                       "move to p=quarantine once the aggregate reports show only your "
                       "own senders")
    pct = tags.get("pct", "100")
    if pct != "100":
        return Finding("dmarc", domain, Status.WARN, f"p={policy} applies to {pct}% of mail "
                       f"at {where}", "raise pct to 100 once reports are clean")
    return Finding("dmarc", domain, Status.PASS, f"p={policy} at {where}")


def check_alignment(domain: str, spf_ok: bool, dkim_ok: bool) -> Finding:
    """DMARC passes only if SPF or DKIM is of the From domain itself (RFC 7489 3.1)."""
    if dkim_ok and spf_ok:
        return Finding("alignment", domain, Status.PASS, f"SPF and DKIM both at {domain}")
    if dkim_ok or spf_ok:
        which, other = ("DKIM", "SPF") if dkim_ok else ("SPF", "DKIM")
        return Finding("alignment", domain, Status.PASS,
                       f"{which} at {domain} can align with From (add {other} for a second "
                       "chance when mail is forwarded)")
    return Finding("alignment", domain, Status.FAIL, f"neither SPF nor DKIM is published at "
                   f"{domain}: mail From {domain} fails DMARC",
                   "publish DKIM for the From domain (survives forwarding) and SPF")


def check_mx(domain: str, answer: Answer) -> Finding:
    """The reply-to domain takes mail: an MX that is not the null MX (RFC 7505)."""
    if answer.error:
        return Finding("mx", domain, Status.WARN, f"could not look up MX: {answer.error}")
    hosts = []
    for record in answer.records:
        pref, _, host = record.partition(" ")
        hosts.append((int(pref) if pref.isdigit() else 0, host.strip()))
    if not hosts:
        return Finding("mx", domain, Status.FAIL, f"no MX record: replies to {domain} "
                       "cannot come back", f"add an MX record for {domain} pointing at "
                       "your mail server")
    if any(host in (".", "") for _, host in hosts):
        return Finding("mx", domain, Status.FAIL, f"{domain} publishes a null MX: it accepts "
                       "no mail, so replies bounce", "replace it with your mail server's MX")
    names = ", ".join(f"{pref} {host.rstrip('.')}" for pref, host in sorted(hosts))
    return Finding("mx", domain, Status.PASS, names)


def _dmarc_records(answer: Answer) -> list[str]:
    return [r.strip() for r in answer.records if _DMARC.match(r.strip())]
