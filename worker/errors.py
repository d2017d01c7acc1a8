"""One exception tree for Nurture.

    NurtureError                 anything Nurture raises on purpose
    ├── UserError                a user can fix it; the CLI prints it without a traceback
    │   ├── ConfigError          a configuration key has a bad value (names the key)
    │   ├── CampaignError        a campaign folder has problems (carries every Problem)
    │   ├── LeadError            a lead's field is invalid (names the field)
    │   ├── NotFound             a lead, campaign, step or task that does not exist
    │   ├── WorkerLockError      another worker already holds the SQLite database
    │   └── SecretKeyError       a stored secret does not decrypt with NURTURE_SECRET_KEY
    ├── TemplateError            a template failed to compile or render (names the template)
    │   └── LimitError           ... by going past a sandbox limit: its campaign is skipped
    ├── StoreError               the database failed (wraps the driver's error)
    ├── DeliveryError            an outbound mail was not accepted
    │   ├── TransientDeliveryError   4xx, timeouts, dropped connections: retry later
    │   └── PermanentDeliveryError   5xx: record the server's words, do not retry
    ├── MailboxError             the inbound mailbox failed (connection, protocol)
    └── OAuthError               the OAuth 2.0 provider refused or could not be reached
        ├── GrantRevokedError    a refresh was refused (invalid_grant): sign in again
        └── LoginTimeout         nobody completed the sign-in before the timeout

Adapters translate library errors at the boundary: ``raise StoreError(...) from exc``.
"""

from __future__ import annotations

from dataclasses import dataclass


class NurtureError(Exception):
    """Base of every error Nurture raises on purpose."""


class UserError(NurtureError):
    """An error the user can fix; printed as one line, exit code 1."""


class ConfigError(UserError):
    """A configuration value is invalid."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key = key
        self.source = source
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{key}: {message}")


@dataclass(frozen=True, order=True)
class Problem:
    """One problem found in a campaign folder, printed as ``path:line: message``."""

    path: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


class CampaignError(UserError):
    """A campaign folder failed validation."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class LeadError(UserError):
    """A lead's field is invalid."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class NotFound(UserError):
    """Something named on the command line or in a request does not exist."""


class WorkerLockError(UserError):
    """Another `nurture run` already holds the SQLite database."""


class TemplateError(NurtureError):
    """A template failed to compile or render."""

    def __init__(self, template: str, line: int, message: str) -> None:
        self.template = template
        self.line = line
        self.reason = message
        super().__init__(f"{template}:{line}: {message}")


class LimitError(TemplateError):
    """A template or ``when`` went past a sandbox limit (size, depth, time): the worker skips
    its campaign until the files change, rather than failing each lead."""


class StoreError(NurtureError):
    """The database failed."""


class DeliveryError(NurtureError):
    """An outbound mail was not accepted."""

    def __init__(self, code: int | None, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code} {message}" if code else message)


class TransientDeliveryError(DeliveryError):
    """Try again later: 4xx, timeouts, dropped connections."""

    def __init__(self, code: int | None, message: str, throttled: bool = False) -> None:
        self.throttled = throttled
        super().__init__(code, message)


class PermanentDeliveryError(DeliveryError):
    """The server refused for good (5xx)."""


class MailboxError(NurtureError):
    """The inbound mailbox failed."""


class SecretKeyError(UserError):
    """A stored secret does not decrypt: another NURTURE_SECRET_KEY, or changed data."""


class OAuthError(NurtureError):
    """The OAuth 2.0 provider answered with an error (RFC 6749 ``error``), or not at all."""

    def __init__(self, error: str, description: str = "", account: str = "") -> None:
        self.error = error
        self.description = description
        self.account = account
        text = f"{error}: {description}" if description else error
        super().__init__(f"{account}: {text}" if account else text)


class GrantRevokedError(OAuthError):
    """The provider refused the refresh token (revoked consent, password change): the
    mailbox stops until someone runs ``nurture mailbox login`` again."""


class LoginTimeout(OAuthError):
    """Nobody finished the sign-in in the browser before the timeout."""
