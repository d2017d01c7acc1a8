"""The configuration's sections, as frozen dataclasses: one per ``[section]`` of
``config/nurture.toml`` (mail-specific ones in ``config_mail.py``, webhooks in
``config_webhooks.py``). Loading and validation live in ``config.py``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from worker.config_app import AppSettings, TeamSettings
from worker.config_mail import DnsSettings, OAuth2Settings
from worker.config_webhooks import WebhooksSettings
from worker.secret import Secret


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
    # The receiving server's RFC 8601 authserv-id: a DMARC fail under it is believed
    authserv_id: str = ""


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
    app: AppSettings = field(default_factory=AppSettings)
    team: TeamSettings = field(default_factory=TeamSettings)
    secret_key: Secret = _secret()
    api_token: Secret = _secret()
    source: str = "defaults"

    @property
    def campaigns_dir(self) -> Path:
        return Path(self.campaigns.dir)

    @property
    def templates_dir(self) -> Path:
        return Path(self.templates.dir)
