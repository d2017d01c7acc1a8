"""Ops commands: init, run, status, and the inbox's command-line doors (classify,
reclassify)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
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


def inbox_reclassify(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    """Correct an inbound message's class; who is ``--by`` or the OS user."""
    app = App(settings())
    app.db.check_schema()
    done = app.reclassify(args.id, args.target, args.by or getpass.getuser())
    if not done.changed:
        print(f"mail in #{done.inbound_id} is already {done.new}: nothing to do")
        return 0
    print(f"mail in #{done.inbound_id}: {done.old} -> {done.new}")
    print(f"undone: {done.undone or 'nothing'}")
    print(f"action: {done.action}")
    return 0


def status(args: argparse.Namespace, settings: Callable[[], Settings]) -> int:
    from worker.commands.status import show_status
    return show_status(App(settings()), as_json=args.json)
