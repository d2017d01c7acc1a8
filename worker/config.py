"""Configuration: one TOML file plus ``NURTURE_<SECTION>__<KEY>`` overrides, validated once.

Secrets (passwords, ``NURTURE_SECRET_KEY``, ``NURTURE_API_TOKEN``) are read only from the
environment; a secret written into the file is refused, and ``Secret`` never prints its value.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from worker.config_mail import DnsSettings, OAuth2Settings, check_mail_settings, to_str_tuple
from worker.config_webhooks import WebhooksSettings, build_webhooks, validate_webhooks
from worker.errors import ConfigError
from worker.secret import Secret

DEFAULT_CONFIG_PATH = Path("config/nurture.toml")
ENV_PREFIX = "NURTURE_"


def _secret() -> Any:
    return field(default_factory=lambda: Secret(""), metadata={"secret": True})


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/nurture.db"
    pool_size: int = 10


@dataclass(frozen=True)
class DirSettings:
    dir: str = ""


@dataclass(frozen=True)
class OutboundSettings:
    transport: str = "maildir"  # smtp | maildir
    maildir: str = "var/outbox"


@dataclass(frozen=True)
class InboundSettings:
    transport: str = "maildir"  # imap | maildir
    maildir: str = "var/inbox"
    poll_interval_s: float = 1.0
    ooo_default_days: int = 7
    ooo_max_days: int = 30
    soft_bounce_limit: int = 3
    soft_bounce_window_days: int = 30
    not_now_default_days: int = 90  # a "not now" naming no date: its task this far out
    authserv_id: str = ""  # the receiving server's RFC 8601 id: a DMARC fail under it counts


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: Secret = _secret()
    tls: str = "none"  # none | starttls | tls
    connections: int = 10
    timeout_s: float = 30.0
    retries: int = 3
    idle_s: float = 60.0  # an idle connection is closed (QUIT) after this long
    max_message_bytes: int = 10_485_760  # a bigger mail is failed before it is sent
    hourly_cap: int = 0
    daily_cap: int = 0
    warmup_start: int = 0
    warmup_days: int = 0
    address: str = ""
    auth: str = "password"  # password | oauth2
    ca_file: str = ""
    tls_server_name: str = ""
    max_bounce_rate: float = 0.05
    bounce_window: int = 200


@dataclass(frozen=True)
class ImapSettings:
    host: str = "127.0.0.1"
    port: int = 143
    username: str = ""
    password: Secret = _secret()
    folder: str = "INBOX"
    tls: str = "none"  # none | starttls | tls
    idle: bool = True
    idle_renew_s: float = 540.0
    poll_interval_s: float = 30.0
    move_to: str = ""
    flag: str = ""
    timeout_s: float = 30.0
    read_existing: bool = False  # a first start reads the folder's old mail too
    auth: str = "password"  # password | oauth2
    ca_file: str = ""
    tls_server_name: str = ""


@dataclass(frozen=True)
class MailboxSettings:
    """A named mailbox: its own address, SMTP and IMAP accounts and caps."""

    address: str = ""
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    watch: bool = False
    oauth2: OAuth2Settings = field(default_factory=OAuth2Settings)
    dkim_selectors: tuple[str, ...] = ()


@dataclass(frozen=True)
class HttpSettings:
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8787
    public_url: str = ""
    max_body_bytes: int = 65536
    timeout_s: float = 10.0

    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class WorkerSettings:
    batch_size: int = 200
    lease_s: float = 30.0
    heartbeat_s: float = 5.0
    grace_s: float = 10.0
    max_sleep_s: float = 30.0
    late_policy: str = "send"  # send | skip | spread
    late_spread_h: float = 4.0
    retry_base_s: float = 60.0
    retry_max_s: float = 3600.0
    render_process: bool = True
    event_loop: str = "uvloop"  # uvloop | asyncio


@dataclass(frozen=True)
class NotifySettings:
    default_owner: str = ""
    forward_replies: bool = True
    task_digest: bool = False
    digest_hour: int = 8


@dataclass(frozen=True)
class LoggingSettings:
    level: str = "INFO"
    format: str = "text"  # text | json


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    campaigns: DirSettings = field(default_factory=lambda: DirSettings("campaigns"))
    templates: DirSettings = field(default_factory=lambda: DirSettings("templates"))
    outbound: OutboundSettings = field(default_factory=OutboundSettings)
    inbound: InboundSettings = field(default_factory=InboundSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    mailboxes: dict[str, MailboxSettings] = field(default_factory=dict)
    oauth2: OAuth2Settings = field(default_factory=OAuth2Settings)
    dns: DnsSettings = field(default_factory=DnsSettings)
    http: HttpSettings = field(default_factory=HttpSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    notify: NotifySettings = field(default_factory=NotifySettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    webhooks: WebhooksSettings = field(default_factory=WebhooksSettings)
    secret_key: Secret = _secret()
    api_token: Secret = _secret()
    source: str = "defaults"

    @property
    def campaigns_dir(self) -> Path:
        return Path(self.campaigns.dir)

    @property
    def templates_dir(self) -> Path:
        return Path(self.templates.dir)


_CHOICES: dict[str, tuple[str, ...]] = {
    "outbound.transport": ("smtp", "maildir"),
    "inbound.transport": ("imap", "maildir"),
    "smtp.tls": ("none", "starttls", "tls"),
    "imap.tls": ("none", "starttls", "tls"),
    "worker.late_policy": ("send", "skip", "spread"),
    "worker.event_loop": ("uvloop", "asyncio"),
    "logging.level": ("DEBUG", "INFO", "WARNING", "ERROR"),
    "logging.format": ("text", "json"),
}
_POSITIVE = {"connections", "batch_size", "lease_s", "heartbeat_s", "timeout_s",
             "pool_size", "poll_interval_s", "idle_renew_s", "max_body_bytes", "idle_s",
             "max_message_bytes", "max_bounce_rate", "bounce_window"}
_TOP_LEVEL_SECRETS = {"SECRET_KEY": "secret_key", "API_TOKEN": "api_token"}


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Read the file (``NURTURE_CONFIG`` or ``config/nurture.toml`` if present), apply env overrides,
    validate every value, and return frozen settings. Raises ConfigError naming the key."""
    env = os.environ if environ is None else environ
    file_path = Path(path) if path else Path(env.get("NURTURE_CONFIG", "") or DEFAULT_CONFIG_PATH)
    data: dict[str, Any] = {}
    source = "defaults"
    if path or env.get("NURTURE_CONFIG") or file_path.exists():
        try:
            data = tomllib.loads(file_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("NURTURE_CONFIG", f"file not found: {file_path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("file", f"not valid TOML: {exc}", str(file_path)) from None
        source = str(file_path)
        _refuse_file_secrets(data, source)
    for name, value in env.items():
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):]
        if rest in _TOP_LEVEL_SECRETS:
            data[_TOP_LEVEL_SECRETS[rest]] = value
        elif "__" in rest:
            parts = [p.lower() for p in rest.split("__")]
            node = data
            for part in parts[:-1]:
                nxt = node.setdefault(part, {})
                if not isinstance(nxt, dict):
                    raise ConfigError(".".join(parts), "is not a section", name)
                node = nxt
            node[parts[-1]] = _EnvValue(value, name)
    settings: Settings = _build(Settings, data, "", source)
    _validate(settings)
    return dataclasses.replace(settings, source=source)


class _EnvValue(str):
    """A string from the environment; remembers the variable name for error messages."""

    var: str

    def __new__(cls, value: str, var: str) -> _EnvValue:
        obj = super().__new__(cls, value)
        obj.var = var
        return obj


def _refuse_file_secrets(data: Mapping[str, Any], source: str, prefix: str = "") -> None:
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            _refuse_file_secrets(value, source, dotted + ".")
        elif key in ("password", "client_secret", "secret", "secret_key", "api_token") and value:
            env = "NURTURE_" + dotted.upper().replace(".", "__")
            if key in ("secret_key", "api_token"):
                env = "NURTURE_" + key.upper()
            raise ConfigError(dotted, f"secrets are read only from the environment; set {env}",
                              source)


def _build(cls: type[Any], data: Mapping[str, Any], prefix: str, source: str) -> Any:
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip(".") or "file", "must be a table", source)
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)} - {"source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if key not in known:
            where = value.var if isinstance(value, _EnvValue) else source
            raise ConfigError(dotted, "unknown key", where)
        kwargs[key] = _convert(hints[key], value, dotted, source)
    return cls(**kwargs)


def _convert(hint: Any, value: Any, dotted: str, source: str) -> Any:
    where = value.var if isinstance(value, _EnvValue) else source
    origin = typing.get_origin(hint)
    if hint is WebhooksSettings:
        return build_webhooks(value, dotted, source, _convert)
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, dotted + ".", source)  # type: ignore[arg-type]
    if origin is dict:
        _, item = typing.get_args(hint)
        if not isinstance(value, Mapping):
            raise ConfigError(dotted, "must be a table", where)
        return {str(k): _convert(item, v, f"{dotted}.{k}", source) for k, v in value.items()}
    if origin is tuple:
        return to_str_tuple(value, dotted, where)
    if hint is Secret:
        if not isinstance(value, str):
            raise ConfigError(dotted, "must be a string", where)
        return Secret(str(value))
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on"):
            return True
        if isinstance(value, str) and value.strip().lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(dotted, f"must be true or false (got {value!r})", where)
    if hint is int:
        try:
            if isinstance(value, (bool, float)):
                raise ValueError
            return int(value)
        except (TypeError, ValueError):
            raise ConfigError(dotted, f"must be a whole number (got {value!r})", where) from None
    if hint is float:
        try:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        except (TypeError, ValueError):
            raise ConfigError(dotted, f"must be a number (got {value!r})", where) from None
    if hint is str or (isinstance(hint, types.UnionType) and str in typing.get_args(hint)):
        if not isinstance(value, str):
            raise ConfigError(dotted, f"must be a string (got {value!r})", where)
        return str(value)
    raise ConfigError(dotted, f"unsupported value {value!r}", where)  # pragma: no cover


def _validate(s: Settings) -> None:
    for dotted, choices in _CHOICES.items():
        section, key = dotted.split(".")
        value = getattr(getattr(s, section), key)
        if value not in choices:
            raise ConfigError(dotted, f"must be one of {', '.join(choices)} (got {value!r})")
    for name, mb in s.mailboxes.items():
        for sub in ("smtp", "imap"):
            tls = getattr(mb, sub).tls
            if tls not in ("none", "starttls", "tls"):
                raise ConfigError(f"mailboxes.{name}.{sub}.tls",
                                  f"must be one of none, starttls, tls (got {tls!r})")
        if not mb.address or "@" not in mb.address:
            raise ConfigError(f"mailboxes.{name}.address", "must be an email address")
    _check_numbers(s)
    accounts: list[tuple[str, Any, OAuth2Settings | None, str | None]] = [
        ("smtp", s.smtp, None, None), ("imap", s.imap, None, None)]
    for name, mb in s.mailboxes.items():
        accounts += [(f"mailboxes.{name}.{sub}", getattr(mb, sub), mb.oauth2, name)
                     for sub in ("smtp", "imap")]
    check_mail_settings(s.oauth2, s.dns, accounts,
                        {name: mb.dkim_selectors for name, mb in s.mailboxes.items()})
    url = s.database.url
    scheme = urlsplit(url).scheme
    if not (scheme.startswith("sqlite") or scheme.startswith("postgres")):
        raise ConfigError("database.url", "must start with sqlite:/// or postgresql://")
    for key, port in (("smtp.port", s.smtp.port), ("imap.port", s.imap.port),
                      ("http.port", s.http.port)):
        if not 0 <= port <= 65535:
            raise ConfigError(key, f"must be between 0 and 65535 (got {port})")
    if s.http.public_url and urlsplit(s.http.public_url).scheme not in ("http", "https"):
        raise ConfigError("http.public_url", "must start with http:// or https://")
    if not 0 <= s.notify.digest_hour <= 23:
        raise ConfigError("notify.digest_hour", "must be between 0 and 23")
    validate_webhooks(s.webhooks)


def _check_numbers(s: Settings) -> None:
    for section in ("database", "inbound", "smtp", "imap", "http", "worker"):
        obj = getattr(s, section)
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if value < 0 or (f.name in _POSITIVE and value == 0):
                need = "greater than 0" if f.name in _POSITIVE else "0 or more"
                raise ConfigError(f"{section}.{f.name}", f"must be {need} (got {value})")


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as plain data with secrets masked, for `nurture status` and logs."""
    def plain(obj: Any) -> Any:
        if isinstance(obj, Secret):
            return "********" if obj else ""
        if dataclasses.is_dataclass(obj):
            return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
        if isinstance(obj, dict):
            return {k: plain(v) for k, v in obj.items()}
        return obj
    out = plain(settings)
    out["database"]["url"] = redact_url(settings.database.url)
    return out  # type: ignore[no-any-return]


def redact_url(url: str) -> str:
    """Hide the password in a database URL."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":********@")
        return parts._replace(netloc=netloc).geturl()
    return url
