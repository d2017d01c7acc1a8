"""``nurture webhooks ...``: endpoint tools. Today: ``secret`` prints a new signing secret."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from worker.adapters.webhook_http import new_secret
from worker.config import Settings


def secret(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Print a new Standard Webhooks secret (``whsec_`` + base64 of 32 random bytes); it
    reads no configuration, so it works before the first endpoint is set up."""
    print(new_secret())
    return 0
