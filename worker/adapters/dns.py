"""DNS lookups for `nurture doctor`, with dnspython: TXT and MX as ``dns_policy.Answer``.

``nameservers`` (``dns.nameservers``: ``"IP"`` or ``"IP:PORT"``) replaces the system's
resolvers. A name that does not exist and a name without records of the type both answer
no records; a timeout or SERVFAIL answers the error, so a check can say it could not tell.
"""

from __future__ import annotations

import dns.exception
import dns.nameserver
import dns.rdatatype
import dns.resolver

from worker.config_mail import parse_nameserver
from worker.domain.dns_policy import Answer


class DnsResolver:
    """A stub resolver; callable as a ``dns_policy.Lookup``."""

    def __init__(self, nameservers: tuple[str, ...] = (), timeout_s: float = 5.0) -> None:
        if nameservers:
            self._resolver = dns.resolver.Resolver(configure=False)
            self._resolver.nameservers = [
                dns.nameserver.Do53Nameserver(*parse_nameserver(ns)) for ns in nameservers]
        else:
            self._resolver = dns.resolver.Resolver()
        self._resolver.lifetime = timeout_s
        self._resolver.timeout = min(timeout_s, 2.0)

    def __call__(self, name: str, rdtype: str) -> Answer:
        """TXT strings joined per record; MX as ``"PREF HOST"``."""
        try:
            answer = self._resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN:
            return Answer()
        except dns.resolver.NoNameservers as exc:
            return Answer(error=f"no server answered ({_first_line(exc)})")
        except dns.exception.Timeout:
            return Answer(error="timed out")
        except dns.exception.DNSException as exc:
            return Answer(error=f"{type(exc).__name__}: {_first_line(exc)}")
        if answer.rrset is None:
            return Answer()
        records = []
        for rdata in answer.rrset:
            if rdata.rdtype == dns.rdatatype.TXT:
                # A long TXT record (a DKIM key) comes as several strings: one value.
                records.append(b"".join(rdata.strings).decode("utf-8", "replace"))
            elif rdata.rdtype == dns.rdatatype.MX:
                records.append(f"{rdata.preference} {rdata.exchange.to_text()}")
        return Answer(tuple(records))


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
