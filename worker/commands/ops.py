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
    app = App(settings())
    runner = app.make_runner(once=args.once)
    if app.settings.worker.event_loop == "uvloop":
        import uvloop  # libuv's loop: about a third less CPU per mail than asyncio's own
        return uvloop.run(runner.run())
    return asyncio.run(runner.run())


def inbox_classify(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.commands.inbox import run_classify
    return run_classify(list(args.files), args.json, sys.stdout, sys.stderr)


def status(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.commands.status import show_status
    return show_status(App(settings()), as_json=args.json)
