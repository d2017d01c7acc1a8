"""The composition root: the only module that picks adapters.

Commands build an ``App`` from settings and ask it for what they need; nothing is opened
until it is used (``check``, ``simulate`` and ``preview`` never touch the database). Each
use-case (``worker/usecases``) is handed exactly the ports it needs; ``App`` holds no
use-case logic of its own (``after_smtp_bounce``, ``send_notification`` and
``task_digest_if_due`` delegate, for the loop that calls them).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import secrets
import socket
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from worker.catalog import Catalog, disk_signature, load_catalog
from worker.config import Settings
from worker.domain import tokens
from worker.domain.model import EnrollmentStatus, SuppressionReason
from worker.domain.sequence import Policy
from worker.errors import UserError, WorkerLockError
from worker.mailer import DEFAULT_MAILBOX, MailFactory, install_tag
from worker.metrics import Metrics
from worker.ports import Clock, Mailbox, Sender, SystemClock
from worker.usecases.by_hand import ByHand
from worker.usecases.inbound import Inbound
from worker.usecases.intake import Intake
from worker.usecases.intent_actions import IntentActions  # reply intent (issue 14)
from worker.usecases.notify import NoteRow, Notify
from worker.usecases.suppress import Suppress

if TYPE_CHECKING:
    from worker.adapters.db import Database
    from worker.adapters.db.people import PeopleRows
    from worker.adapters.http_context import HttpPorts, LoopState
    from worker.rendering import RenderProcess
    from worker.sending import Planner

log = logging.getLogger(__name__)


class Loop(Protocol):
    """The running worker loop as the root sees it (set by the loop while it runs)."""

    def wake(self) -> None: ...


class App:
    """Builds the adapters from settings, lazily, and hands each use-case its ports."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.runner: Loop | None = None
        self._lock_fd: int | None = None

    # --- the database ---------------------------------------------------------------------------

    @cached_property
    def db(self) -> Database:
        from worker.adapters.db import Database
        from worker.adapters.db.engine import make_engine
        return Database(make_engine(self.settings.database.url, self.settings.database.pool_size),
                        self.clock)

    # --- campaigns ------------------------------------------------------------------------------

    @cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.campaigns_dir, self.settings.templates_dir,
                            mailbox_names=frozenset(self.settings.mailboxes))

    def reload_catalog_if_changed(self) -> bool:
        """Pick up edited campaigns without a restart. True if something changed."""
        signature = disk_signature(self.settings.campaigns_dir, self.settings.templates_dir)
        if signature == self.catalog.signature:
            return False
        fresh = load_catalog(self.settings.campaigns_dir, self.settings.templates_dir,
                             mailbox_names=frozenset(self.settings.mailboxes))
        self.__dict__["catalog"] = fresh
        self.planner.catalog = fresh
        log.info("action=campaigns_reloaded campaigns=%d broken=%d", len(fresh.campaigns),
                 len(fresh.problems))
        self.wake_newsletters()
        return True

    # --- secrets --------------------------------------------------------------------------------

    def secret_key(self, required: bool) -> bytes:
        key = self.settings.secret_key.reveal()
        if key:
            return key.encode()
        if required:
            raise UserError("NURTURE_SECRET_KEY is not set: unsubscribe links are signed with it. "
                            "Set it in the environment, e.g. export NURTURE_SECRET_KEY=$(python3 "
                            "-c 'import secrets; print(secrets.token_urlsafe(32))')")
        return tokens.PREVIEW_KEY

    @cached_property
    def factory(self) -> MailFactory:
        return MailFactory(self.settings, self.secret_key(required=False),
                           install_tag(self.db.hash_key()))

    def preview_factory(self) -> MailFactory:
        """For `preview`: no database, no secret."""
        return MailFactory(self.settings, self.secret_key(required=False))

    @cached_property
    def planner(self) -> Planner:
        from worker.sending import Planner
        w = self.settings.worker
        rules = Policy(w.late_policy, w.late_spread_h, self.settings.notify.default_owner or None)
        return Planner(self.db, self.catalog, self.factory, rules, w.retry_base_s, w.retry_max_s)

    def render_process(self) -> RenderProcess | None:
        """For `nurture run`: render big batches in a second process (the second core)."""
        if not self.settings.worker.render_process:
            return None
        from worker.rendering import RenderProcess
        return RenderProcess(self.settings, self.factory.key, self.factory.install)

    def current_catalog(self) -> Catalog:
        """The campaigns as they are now (a reload replaces them while the worker runs)."""
        return self.catalog

    def wake(self) -> None:
        """Wake the running loop, if there is one (commands and tests run without)."""
        if self.runner is not None:
            self.runner.wake()

    @cached_property
    def suppress(self) -> Suppress:
        return Suppress(self.db)

    @cached_property
    def service(self) -> Intake:
        """Intake: leads in, enrolments, events."""
        return Intake(self.db, self.current_catalog, self.clock, self.wake,
                      self.settings.notify.default_owner or None)

    @cached_property
    def by_hand(self) -> ByHand:
        return ByHand(self.db, self.current_catalog, self.clock, self.wake, self.suppress)

    @cached_property
    def inbox(self) -> Inbound:
        # --- reply intent (issue 14): owner tasks composed over the session factory ---
        from worker.adapters.db.owner_tasks import OwnerTasks  # lazily, as PeopleRows
        intents = IntentActions(self.db, OwnerTasks(self.db.session), self.db,
                                self.current_catalog, self.clock, self.settings.inbound,
                                self.settings.notify.default_owner)
        # --- end reply intent ---
        return Inbound(self.db, self.current_catalog, self.clock, self.metrics, self.suppress,
                       self.settings.inbound, self.settings.notify,
                       self.secret_key(required=False), intents)

    @cached_property
    def people(self) -> PeopleRows:
        """Read-side rows for the people commands."""
        from worker.adapters.db.people import PeopleRows
        return PeopleRows(self.db.session)

    @cached_property
    def notify(self) -> Notify:
        return Notify(self.db, lambda: self.sender, self.settings, self.clock, self.worker_id)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    # --- doors ----------------------------------------------------------------------------------

    @cached_property
    def sender(self) -> Sender:
        if self.settings.outbound.transport == "maildir":
            from worker.adapters.maildir_outbox import MaildirSender
            return MaildirSender(Path(self.settings.outbound.maildir), connections=1)
        from worker.adapters.smtp import SmtpSender
        boxes = {DEFAULT_MAILBOX: self.settings.smtp,
                 **{name: mb.smtp for name, mb in self.settings.mailboxes.items()}}
        return SmtpSender(boxes)

    @cached_property
    def inbound(self) -> list[Mailbox]:
        s = self.settings
        if s.inbound.transport == "maildir":
            from worker.adapters.maildir_inbox import MaildirMailbox
            return [MaildirMailbox(DEFAULT_MAILBOX, Path(s.inbound.maildir), self.inbox,
                                   poll_interval_s=s.inbound.poll_interval_s,
                                   checkpoints=self.db, clock=self.clock)]
        from worker.adapters.imap import ImapMailbox
        boxes: list[Mailbox] = []
        lease = s.worker.lease_s
        if s.imap.username:
            boxes.append(ImapMailbox(DEFAULT_MAILBOX, s.imap, self.inbox, self.db, self.worker_id,
                                     lease_s=lease, clock=self.clock))
        for name, mb in s.mailboxes.items():
            if mb.watch and mb.imap.username:
                boxes.append(ImapMailbox(name, mb.imap, self.inbox, self.db, self.worker_id,
                                         lease_s=lease, clock=self.clock))
        return boxes

    def reset_doors(self) -> None:
        """Forget the mailbox watchers and the sender (they are one-shot), so this App can run
        a worker again (tests run many passes in one process)."""
        self.__dict__.pop("inbound", None)
        self.__dict__.pop("sender", None)

    async def start_http(self, runner: LoopState) -> asyncio.Task[Any] | None:
        if not self.settings.http.enabled:
            return None
        from worker.adapters.http import serve
        return await serve(self.http_ports(), runner)

    def http_ports(self) -> HttpPorts:
        """What the HTTP door is given: intake, unsubscribe, its reads, metrics, the key."""
        from worker.adapters.http_context import HttpPorts
        return HttpPorts(self.settings, self.service, self.by_hand, self.db, self.clock,
                         self.metrics, self.inbound, self.secret_key(required=True))

    # --- worker lifecycle -----------------------------------------------------------------------

    def start_worker(self) -> None:
        """Refuse a second SQLite worker; register; release stale claims; create Maildirs."""
        from worker.adapters.db.engine import sqlite_path
        self.db.check_schema()
        self.secret_key(required=True)
        path = sqlite_path(self.settings.database.url)
        if path is not None:
            self._lock_sqlite(path)
            released = self.db.release_all_claims()
            if released:
                log.info("action=claims_released_at_start count=%d", released)
        if self.settings.outbound.transport == "maildir":
            from worker.adapters.maildir_outbox import ensure_maildir
            ensure_maildir(Path(self.settings.outbound.maildir))
        if self.settings.inbound.transport == "maildir":
            from worker.adapters.maildir_outbox import ensure_maildir
            ensure_maildir(Path(self.settings.inbound.maildir))
        self.db.register_worker(self.worker_id, socket.gethostname(), os.getpid())
        for slug, problems in self.catalog.problems.items():
            log.warning("action=campaign_broken campaign=%s problems=%d first=%r", slug,
                        len(problems), str(problems[0]))
        self.wake_newsletters()

    def _lock_sqlite(self, path: Path) -> None:
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
        self._lock_fd = fd

    def stop_worker(self) -> None:
        self.db.worker_stopped(self.worker_id)
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def wake_newsletters(self) -> None:
        """Members waiting for a next issue get its date (issues may be added at any time)."""
        for camp in self.catalog.campaigns.values():
            if camp.kind != "newsletter" or not camp.issues:
                continue
            self.db.wake_newsletter(camp.slug, camp.issues)

    # --- what the loop calls (delegations to the use-cases) -----------------------------------

    def after_smtp_bounce(self, lead_id: int, code: int | None, text: str) -> None:
        """A 5.1.x refusal at SMTP time: the address is dead; suppress it."""
        self.suppress(lead_id, SuppressionReason.BOUNCED, EnrollmentStatus.BOUNCED,
                      f"smtp {code} {text[:200]}")

    async def send_notification(self, note: NoteRow) -> str | None:
        """Send one notification mail; returns an error text or None."""
        return await self.notify.send(note)

    def task_digest_if_due(self) -> None:
        """Once a day at ``notify.digest_hour`` (UTC), each owner gets their open tasks."""
        self.notify.digest_if_due()
