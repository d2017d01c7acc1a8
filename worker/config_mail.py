"""Mailbox sign-in and DNS settings: ``[oauth2]``, ``[dns]`` and their checks, used by ``worker.config``.

Kept beside config.py so that the one-place configuration stays under its size: the
dataclasses here are fields of ``Settings``/``MailboxSettings``; ``check_mail_settings``
runs inside ``load_settings``'s single validation pass. Errors name the key.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.domain.oauth_providers import endpoints
from worker.errors import ConfigError
from worker.secret import Secret

AUTH_KINDS = ("password", "oauth2")
DEFAULT_DKIM_SELECTORS = ("google", "selector1", "selector2", "default", "k1", "s1", "s2")
_HOSTNAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?\.?)+")
_SELECTOR = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_.-]{0,62})")


@dataclass(frozen=True)
class OAuth2Settings:
    """An app registration: which provider, which client, which flow."""

    provider: str = ""  # microsoft | google | custom; empty: not configured
    client_id: str = ""
    client_secret: Secret = field(default_factory=lambda: Secret(""),
                                  metadata={"secret": True})
    flow: str = "authorization_code"  # authorization_code | client_credentials
    tenant: str = ""
    authorize_url: str = ""
    token_url: str = ""
    scopes: tuple[str, ...] = ()


@dataclass(frozen=True)
class DnsSettings:
    """Where `nurture doctor` asks (empty: the system's resolvers)."""

    nameservers: tuple[str, ...] = ()
    timeout_s: float = 5.0


def to_str_tuple(value: Any, dotted: str, where: str | None) -> tuple[str, ...]:
    """A TOML array of strings, or an env value split on commas and spaces."""
    if isinstance(value, str):
        return tuple(part for part in re.split(r"[,\s]+", value) if part)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise ConfigError(dotted, f"must be a list of strings (got {value!r})", where)


def parse_nameserver(text: str) -> tuple[str, int]:
    """``1.2.3.4``, ``1.2.3.4:5353``, ``::1`` or ``[::1]:5353`` -> (address, port)."""
    host, port = text, 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            port = int(rest.lstrip(":"))
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    ipaddress.ip_address(host)
    if not 0 < port < 65536:
        raise ValueError(port)
    return host, port


def oauth2_for(top: OAuth2Settings, mailbox: OAuth2Settings | None,
               name: str | None) -> tuple[OAuth2Settings, str]:
    """The registration a mailbox signs in with (its own, else the top-level ``[oauth2]``),
    and that section's key prefix."""
    if mailbox is not None and name is not None and mailbox.provider:
        return mailbox, f"mailboxes.{name}.oauth2"
    return top, "oauth2"


def check_mail_settings(top: OAuth2Settings, dns: DnsSettings,
                        accounts: Iterable[tuple[str, Any, OAuth2Settings | None, str | None]],
                        mailbox_selectors: Mapping[str, tuple[str, ...]]) -> None:
    """Validate sign-in, TLS and bounce keys of every SMTP/IMAP account, [oauth2] and [dns].

    ``accounts`` yields (key prefix, SmtpSettings or ImapSettings, the mailbox's own
    OAuth2Settings, mailbox name) for the default pair and every mailbox.
    """
    used: dict[str, OAuth2Settings] = {}
    for prefix, account, own, name in accounts:
        if account.auth not in AUTH_KINDS:
            raise ConfigError(f"{prefix}.auth", f"must be one of {', '.join(AUTH_KINDS)} "
                              f"(got {account.auth!r})")
        if account.ca_file and not os.path.isfile(account.ca_file):
            raise ConfigError(f"{prefix}.ca_file", f"file not found: {account.ca_file}")
        if account.tls_server_name and not _HOSTNAME.fullmatch(account.tls_server_name):
            raise ConfigError(f"{prefix}.tls_server_name",
                              f"must be a host name (got {account.tls_server_name!r})")
        rate = getattr(account, "max_bounce_rate", None)
        if rate is not None and not 0 < rate <= 1:
            raise ConfigError(f"{prefix}.max_bounce_rate", f"must be above 0 and at most 1 "
                              f"(got {rate})")
        window = getattr(account, "bounce_window", None)
        if window is not None and window < 1:
            raise ConfigError(f"{prefix}.bounce_window", f"must be 1 or more (got {window})")
        if account.auth == "oauth2":
            if not account.username:
                raise ConfigError(f"{prefix}.username", "required with auth = \"oauth2\" (the "
                                  "mailbox address to sign in as)")
            settings, section = oauth2_for(top, own, name)
            used[section] = settings
    for section, settings in used.items():
        _check_oauth2(settings, section)
    for index, server in enumerate(dns.nameservers):
        try:
            parse_nameserver(server)
        except ValueError:
            raise ConfigError(f"dns.nameservers[{index}]", "must be an IP address with an "
                              f"optional :port (got {server!r})") from None
    if dns.timeout_s <= 0:
        raise ConfigError("dns.timeout_s", f"must be greater than 0 (got {dns.timeout_s})")
    for name, selectors in mailbox_selectors.items():
        for selector in selectors:
            if not _SELECTOR.fullmatch(selector):
                raise ConfigError(f"mailboxes.{name}.dkim_selectors",
                                  f"not a DKIM selector: {selector!r}")


def _check_oauth2(settings: OAuth2Settings, section: str) -> None:
    if not settings.provider:
        raise ConfigError(f"{section}.provider", "required when an account uses auth = "
                          "\"oauth2\" (microsoft, google or custom)")
    endpoints(settings.provider, settings.flow, tenant=settings.tenant,
              authorize_url=settings.authorize_url, token_url=settings.token_url,
              scopes=settings.scopes, prefix=section)
    if not settings.client_id:
        raise ConfigError(f"{section}.client_id", "required (the app registration's ID)")
    if settings.flow == "client_credentials" and not settings.client_secret:
        env = "NURTURE_" + section.upper().replace(".", "__") + "__CLIENT_SECRET"
        raise ConfigError(f"{section}.client_secret", f"required for client_credentials; "
                          f"set {env}")
