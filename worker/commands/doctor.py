"""`nurture doctor [DOMAIN...]`: SPF, DKIM, DMARC and reply MX of each sending domain.

Without arguments the domains are those of ``smtp.address`` and ``mailboxes.*.address``;
the reply domain of a mailbox is that of its IMAP user when it is an address. Exit 1 when
any check fails (warnings alone exit 0).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from email.utils import parseaddr
from typing import Any, TextIO

from worker.adapters.dns import DnsResolver
from worker.config import Settings
from worker.domain.dns_policy import Finding, Lookup, Status, diagnose
from worker.errors import UserError

_DOMAIN = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                     r"[A-Za-z0-9-]{2,63}")
_MARK = {Status.PASS: "pass", Status.WARN: "WARN", Status.FAIL: "FAIL"}


def _domain_of(address: str) -> str:
    _, email = parseaddr(address)
    return email.rpartition("@")[2].lower() if "@" in email else ""


def sending_domains(settings: Settings) -> dict[str, dict[str, Any]]:
    """{domain: {"reply_domain": ..., "selectors": [...]}} from the configured addresses."""
    plan: dict[str, dict[str, Any]] = {}
    pairs: list[tuple[str, str, tuple[str, ...]]] = [
        (settings.smtp.address, settings.imap.username, ())]
    pairs += [(mb.address, mb.imap.username, mb.dkim_selectors)
              for mb in settings.mailboxes.values()]
    for address, imap_user, selectors in pairs:
        domain = _domain_of(address)
        if not domain:
            continue
        entry = plan.setdefault(domain, {"reply_domain": domain, "selectors": []})
        reply = _domain_of(imap_user) if "@" in imap_user else ""
        if reply:
            entry["reply_domain"] = reply
        entry["selectors"] += [s for s in selectors if s not in entry["selectors"]]
    return plan


def run_doctor(domains: list[str], settings: Settings, lookup: Lookup, *, as_json: bool,
               out: TextIO) -> int:
    """Check each domain, print the findings, return the exit code."""
    configured = sending_domains(settings)
    for domain in domains:
        if not _DOMAIN.fullmatch(domain.rstrip(".")):
            raise UserError(f"DOMAIN: not a domain name: {domain!r}")
    targets = [d.rstrip(".").lower() for d in domains] or list(configured)
    if not targets:
        raise UserError("no sending domain: name one (nurture doctor acme.example) or set "
                        "smtp.address / mailboxes.NAME.address")
    report: list[tuple[str, list[Finding]]] = []
    for domain in targets:
        entry = configured.get(domain, {"reply_domain": domain, "selectors": []})
        report.append((domain, diagnose(domain, lookup, reply_domain=entry["reply_domain"],
                                        selectors=entry["selectors"])))
    failed = any(f.status is Status.FAIL for _, findings in report for f in findings)
    if as_json:
        json.dump({"ok": not failed, "domains": [
            {"domain": d, "findings": [f.as_dict() for f in fs]} for d, fs in report]},
            out, indent=2)
        out.write("\n")
    else:
        for domain, findings in report:
            out.write(f"{domain}\n")
            for f in findings:
                where = f" ({f.domain})" if f.domain != domain else ""
                out.write(f"  {_MARK[f.status]}  {f.check:<9} {f.message}{where}\n")
                if f.fix and f.status is not Status.PASS:
                    out.write(f"        {'':<9} fix: {f.fix}\n")
        counts = {s: sum(f.status is s for _, fs in report for f in fs) for s in Status}
        out.write(f"{counts[Status.PASS]} passed, {counts[Status.WARN]} warned, "
                  f"{counts[Status.FAIL]} failed\n")
    return 1 if failed else 0


def doctor(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """The CLI handler."""
    s = settings()
    resolver = DnsResolver(s.dns.nameservers, s.dns.timeout_s)
    return run_doctor(list(args.domains), s, resolver, as_json=args.json, out=sys.stdout)
