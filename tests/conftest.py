from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# The repository root, so that `worker` and `tests.servers` import without an install.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

pytest_plugins = ["tests.servers.fixtures", "tests.servers.oauth_fixtures", "tests.scenario", "tests.httpkit", "tests.imapkit"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="the long proofs: chaos with 10,000 steps and 50 kills, a 60 s SMTP "
                          "outage (same as NURTURE_CHAOS_LONG=1 NURTURE_FAULTS_LONG=1)")


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--long"):
        os.environ.setdefault("NURTURE_CHAOS_LONG", "1")
        os.environ.setdefault("NURTURE_FAULTS_LONG", "1")
