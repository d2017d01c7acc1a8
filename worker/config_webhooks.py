"""The ``[webhooks]`` configuration section: endpoints as sub-tables beside plain keys.

    [webhooks]
    max_age_h = 72            # plain keys are settings of the whole section
    [webhooks.crm]            # every sub-table is an endpoint, named by its key
    url = "https://crm.example/hooks/nurture"
    events = ["lead.replied", "lead.bounced"]   # absent: every type
    timeout_s = 10
    enabled = true
    # secret: only NURTURE_WEBHOOKS__CRM__SECRET (whsec_ + base64)

Environment overrides work as for every key (``NURTURE_WEBHOOKS__MAX_AGE_H``,
``NURTURE_WEBHOOKS__CRM__URL``, ``NURTURE_WEBHOOKS__CRM__EVENTS=lead.replied,lead.bounced``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from worker.domain.webhook_retry import check_secret
from worker.domain.webhooks import EVENT_TYPES
from worker.errors import ConfigError
from worker.secret import Secret

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
Convert = Callable[[Any, Any, str, str], Any]


@dataclass(frozen=True)
class WebhookEndpointSettings:
    """One receiver: where, which events (None: all), how long to wait, and its secret."""

    url: str = ""
    events: tuple[str, ...] | None = None
    timeout_s: float = 10.0
    enabled: bool = True
    secret: Secret = field(default_factory=lambda: Secret(""))

    def event_filter(self) -> frozenset[str] | None:
        """The ``events`` list as a set, or None for every type."""
        return None if self.events is None else frozenset(self.events)


@dataclass(frozen=True)
class WebhooksSettings:
    """``max_age_h``: how long an event is retried before it is marked failed."""

    max_age_h: float = 72.0
    endpoints: dict[str, WebhookEndpointSettings] = field(default_factory=dict)

    def enabled(self) -> dict[str, WebhookEndpointSettings]:
        """The endpoints that receive events."""
        return {name: ep for name, ep in self.endpoints.items() if ep.enabled}

    def filters(self) -> dict[str, frozenset[str] | None]:
        """Each enabled endpoint's event filter, for enqueueing."""
        return {name: ep.event_filter() for name, ep in self.enabled().items()}


_ENDPOINT_HINTS = {"url": str, "timeout_s": float, "enabled": bool, "secret": Secret}


def build_webhooks(data: Any, dotted: str, source: str, convert: Convert) -> WebhooksSettings:
    """Split the ``[webhooks]`` table into its plain keys and its endpoint sub-tables.
    ``convert`` is the configuration's own converter, so env values and errors behave as
    everywhere else."""
    if not isinstance(data, Mapping):
        raise ConfigError(dotted, "must be a table", source)
    max_age_h = WebhooksSettings.max_age_h
    endpoints: dict[str, WebhookEndpointSettings] = {}
    for key, value in data.items():
        key_dotted = f"{dotted}.{key}"
        if key == "max_age_h":
            max_age_h = convert(float, value, key_dotted, source)
        elif isinstance(value, Mapping):
            if not NAME_RE.match(key):
                raise ConfigError(key_dotted, "an endpoint name is lowercase letters, digits "
                                  "and _ (it appears in NURTURE_WEBHOOKS__NAME__SECRET)", source)
            endpoints[key] = _endpoint(value, key_dotted, source, convert)
        else:
            raise ConfigError(key_dotted, "unknown key (endpoints are tables: "
                              f"[{dotted}.NAME])", getattr(value, "var", source))
    return WebhooksSettings(max_age_h=max_age_h, endpoints=endpoints)


def _endpoint(data: Mapping[str, Any], dotted: str, source: str,
              convert: Convert) -> WebhookEndpointSettings:
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_dotted = f"{dotted}.{key}"
        where = getattr(value, "var", source)
        if key == "events":
            kwargs["events"] = _events(value, key_dotted, where)
        elif key in _ENDPOINT_HINTS:
            kwargs[key] = convert(_ENDPOINT_HINTS[key], value, key_dotted, source)
        else:
            raise ConfigError(key_dotted, "unknown key", where)
    return WebhookEndpointSettings(**kwargs)


def _events(value: Any, dotted: str, where: str) -> tuple[str, ...]:
    # From the environment a list is written comma-separated.
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise ConfigError(dotted, "must be a list of event types", where)
    names = tuple(i.strip() for i in items if i.strip())
    unknown = [n for n in names if n not in EVENT_TYPES]
    if unknown:
        raise ConfigError(dotted, f"unknown event type {unknown[0]!r} (known: "
                          f"{', '.join(sorted(EVENT_TYPES))})", where)
    return names


def validate_webhooks(w: WebhooksSettings) -> None:
    """Refuse values that would fail later: a bad URL, a missing or malformed secret."""
    if w.max_age_h <= 0:
        raise ConfigError("webhooks.max_age_h", f"must be greater than 0 (got {w.max_age_h})")
    for name, ep in w.endpoints.items():
        key = f"webhooks.{name}"
        parts = urlsplit(ep.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"{key}.url", "must be an http:// or https:// URL")
        if ep.timeout_s <= 0:
            raise ConfigError(f"{key}.timeout_s", f"must be greater than 0 (got {ep.timeout_s})")
        if not ep.enabled:
            continue
        env = f"NURTURE_WEBHOOKS__{name.upper()}__SECRET"
        if not ep.secret:
            raise ConfigError(f"{key}.secret", f"missing: set {env} (`nurture webhooks secret` "
                              "prints a new one)")
        problem = check_secret(ep.secret.reveal())
        if problem:
            raise ConfigError(f"{key}.secret", f"{problem} (read from {env})")
