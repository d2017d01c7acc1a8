"""The composition root's builders, kept apart from ``app.py`` (which alone imports this
module) so the root stays small: the webhook side task (the delivery loop over the outbox,
``engine.webhooks.WebhookDelivery``, wired for `nurture run`), the planners, the doors, the
ledger's store, the SQLite lock. Functions of settings and ports only: they never see ``App``.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from worker.adapters.db.async_ledger import LoopRecords, conninfo
from worker.adapters.db.ledger import SendingRows
from worker.adapters.db.webhook_store import WebhookStore
from worker.adapters.webhook_http import WebhookPoster
from worker.config import Settings
from worker.domain import tokens
from worker.domain.bounce_guard import SendOutcome
from worker.domain.catalog import Catalog
from worker.domain.sequence import Policy
from worker.engine.contracts import SideJob
from worker.engine.planning import Planner
from worker.engine.webhooks import WebhookDelivery
from worker.errors import UserError, WorkerLockError
from worker.mailer import DEFAULT_MAILBOX, Mailboxes, MailFactory
from worker.metrics import Metrics
from worker.ports import Clock, InboundSink, Mailbox, Sender
from worker.usecases.bounce_guard import BounceGuard, StoppedMailboxes
from worker.usecases.mailbox_alerts import MailboxAlerts

if TYPE_CHECKING:
    from worker.adapters.db import Database
    from worker.adapters.oauth2 import TokenSource


def webhook_jobs(settings: Settings, outbox: WebhookStore | None, clock: Clock, worker_id: str,
                 metrics: Metrics) -> dict[str, SideJob]:
    """``{"webhooks": deliver}`` when an endpoint is enabled, else nothing. Every worker runs
    it: claims use SKIP LOCKED on PostgreSQL, so each event goes out through one of them."""
    if outbox is None:
        return {}

    async def deliver(stop: asyncio.Event) -> None:
        poster = WebhookPoster()
        delivery = WebhookDelivery(outbox, poster, settings.webhooks.enabled(), clock,
                                   max_age_h=settings.webhooks.max_age_h, worker_id=worker_id,
                                   observe=metrics.webhook_attempt)
        try:
            await delivery.run(stop)
        finally:
            await poster.close()

    return {"webhooks": deliver}


def build_planner(settings: Settings, db: Database, catalog: Callable[[], Catalog],
                  factory: MailFactory) -> Planner:
    """The planner over the sending room, the lead room's suppression lookup, the campaigns
    (a getter: a reload replaces them) and the mail factory."""
    w = settings.worker
    rules = Policy(w.late_policy, w.late_spread_h, settings.notify.default_owner or None)
    return Planner(db.sending, db.leads, catalog, factory, rules, w.retry_base_s, w.retry_max_s)


def render_planner(settings: Settings, key: bytes, install: str,
                   catalog: Callable[[], Catalog]) -> Planner:
    """The render process's planner: its catalog (the render process's own, kept and reloaded
    there) and a connection of its own (reads)."""
    from worker.adapters.db import Database
    from worker.adapters.db.engine import make_engine
    db = Database(make_engine(settings.database.url, 1))
    return build_planner(settings, db, catalog, MailFactory(settings, key, install))


def build_sender(settings: Settings, tokens: Mapping[str, TokenSource],
                 grant_refused: Callable[[str, Exception], None]) -> Sender:
    """The outbound door: a Maildir, or SMTP with one pool per mailbox (OAuth 2.0 tokens
    where a mailbox signs in with them, issue 15)."""
    if settings.outbound.transport == "maildir":
        from worker.adapters.maildir_outbox import MaildirSender
        return MaildirSender(Path(settings.outbound.maildir), connections=1)
    from worker.adapters.smtp import SmtpSender
    boxes = {DEFAULT_MAILBOX: settings.smtp,
             **{name: mb.smtp for name, mb in settings.mailboxes.items()}}
    return SmtpSender(boxes, tokens, grant_refused)


def build_mailboxes(settings: Settings, sink: InboundSink, db: Database, worker_id: str,
                    clock: Clock, tokens: Mapping[str, TokenSource],
                    grant_refused: Callable[[str, Exception], None]) -> list[Mailbox]:
    """The inbound doors: the embedded Maildir, or one IMAP watcher per watched mailbox."""
    s = settings
    if s.inbound.transport == "maildir":
        from worker.adapters.maildir_inbox import MaildirMailbox
        return [MaildirMailbox(DEFAULT_MAILBOX, Path(s.inbound.maildir), sink,
                               poll_interval_s=s.inbound.poll_interval_s,
                               checkpoints=db, clock=clock)]
    from worker.adapters.imap import ImapMailbox
    watched = [(DEFAULT_MAILBOX, s.imap)] if s.imap.username else []
    watched += [(name, mb.imap) for name, mb in s.mailboxes.items()
                if mb.watch and mb.imap.username]
    return [ImapMailbox(name, imap, sink, db, worker_id, lease_s=s.worker.lease_s, clock=clock,
                        tokens=tokens.get(name), on_revoked=grant_refused)
            for name, imap in watched]


def lock_sqlite(path: Path) -> int:
    """Take the lock that keeps a second worker off one SQLite file; its descriptor."""
    lock_path = Path(f"{path}.lock")
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise WorkerLockError(
            f"another `nurture run` is already using {path} (lock {lock_path}). SQLite is "
            "for one worker process; stop the other one, or use PostgreSQL for several "
            "workers") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def ensure_maildirs(settings: Settings) -> None:
    """Create the outbound and inbound Maildirs the configuration uses."""
    from worker.adapters.maildir_outbox import ensure_maildir
    if settings.outbound.transport == "maildir":
        ensure_maildir(Path(settings.outbound.maildir))
    if settings.inbound.transport == "maildir":
        ensure_maildir(Path(settings.inbound.maildir))


def signing_key(settings: Settings, required: bool) -> bytes:
    """The key unsubscribe links are signed with; the preview key when none is set and
    ``required`` is false (``check``, ``preview``)."""
    key = settings.secret_key.reveal()
    if key:
        return key.encode()
    if required:
        raise UserError("NURTURE_SECRET_KEY is not set: unsubscribe links are signed with it. "
                        "Set it in the environment, e.g. export NURTURE_SECRET_KEY=$(python3 "
                        "-c 'import secrets; print(secrets.token_urlsafe(32))')")
    return tokens.PREVIEW_KEY


def build_bounce_guard(settings: Settings, stopped: StoppedMailboxes,
                       recent_outcomes: Callable[[str, int], list[SendOutcome]],
                       alerts: MailboxAlerts) -> BounceGuard:
    """Holds the mail of stopped mailboxes; pauses one that bounces too much (each mailbox's
    ``max_bounce_rate`` over its ``bounce_window``)."""
    boxes = Mailboxes(settings)

    def limits(name: str) -> tuple[float, int]:
        return boxes.smtp(name).max_bounce_rate, boxes.smtp(name).bounce_window
    return BounceGuard(stopped, recent_outcomes, limits, alerts)


def ledger_records(db: Database) -> SendingRows | LoopRecords:
    """Where the ledger commits: on SQLite the sending store itself (on the loop); on
    PostgreSQL a connection of the loop's own, one statement per group commit."""
    if db.is_sqlite:
        return db.sending
    return LoopRecords(db.sending, conninfo(db.conn.engine))
