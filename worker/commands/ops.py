"""Ops commands: init, run, status, and the inbox classifier's command-line door."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from worker.app import App
from worker.config import Settings, redact_url


def init(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    s = settings()
    app = App(s)
    revision = app.db.migrate()
    print(f"database ready at revision {revision}: {redact_url(s.database.url)}")
    return 0


def run(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.runner import Runner
    app = App(settings())
    return asyncio.run(Runner(app, once=args.once).run())


def inbox_classify(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.commands.inbox import run_classify
    return run_classify(list(args.files), args.json, sys.stdout, sys.stderr)


def status(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.commands.status import show_status
    return show_status(App(settings()), as_json=args.json)
