"""One logging setup: one line per event with ``key=value`` fields; secrets never printed."""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable
from datetime import UTC, datetime

_EMAIL_RE = re.compile(r"([A-Za-z0-9._%+-])[A-Za-z0-9._%+-]*@([A-Za-z0-9.-]+)")


def mask(email: str | None) -> str:
    """``dana@acme.example`` -> ``d***@acme.example`` (addresses are masked at INFO)."""
    if not email:
        return "-"
    local, _, domain = email.partition("@")
    return f"{local[:1]}***@{domain}"


class RedactingFilter(logging.Filter):
    """Replaces every known secret value in a record with ``********``."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, "********")
        if redacted != message:
            record.msg, record.args = redacted, ()
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"at": datetime.fromtimestamp(record.created, UTC).isoformat(),
                           "level": record.levelname.lower(), "logger": record.name,
                           "message": record.getMessage()})


def setup(level: str = "INFO", fmt: str = "text", secrets: Iterable[str] = ()) -> None:
    """Configure the root logger once (stderr)."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(RedactingFilter(secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs each request's full URL at INFO, and webhook URLs often carry a token.
    for noisy in ("aiosmtplib", "imapclient", "mailparser", "uvicorn.access", "alembic",
                  "sqlalchemy", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
