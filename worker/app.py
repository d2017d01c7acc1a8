"""The composition root: the only module that picks adapters.

Commands build an ``App`` from settings and ask it for what they need; nothing is opened
until it is used (``check``, ``simulate`` and ``preview`` never touch the database). Each
use-case (``worker/usecases``) is handed exactly the ports it needs; ``App`` holds no
use-case logic of its own. The loop (``worker/engine``) is built here too, from its
collaborators (``runner_parts``); waking it is a callback the use-cases are given.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from collections.abc import Callable
from functools import cached_property
from typing import TYPE_CHECKING, Any

from worker.adapters.campaign_folders import configured_catalog, disk_signature
from worker.app_parts import (
    build_bounce_guard,
    build_mailboxes,
    build_planner,
    build_sender,
    ensure_maildirs,
    ledger_records,
    lock_sqlite,
    render_planner,
    signing_key,
    webhook_jobs,
)
from worker.config import Settings
from worker.domain.catalog import Catalog, CatalogHolder
from worker.engine.planning import Planner
from worker.engine.render_process import RenderProcess
from worker.engine.runner import Runner
from worker.mailer import MailFactory, install_tag
from worker.metrics import Metrics
from worker.ports import Clock, Mailbox, Sender, SystemClock
from worker.usecases.bounce_guard import BounceGuard
from worker.usecases.by_hand import ByHand
from worker.usecases.campaign_views import CampaignViews
from worker.usecases.inbound import Inbound
from worker.usecases.intake import Intake
from worker.usecases.intent_actions import IntentActions, own_addresses
from worker.usecases.mailbox_alerts import MailboxAlerts
from worker.usecases.notify import Notify
from worker.usecases.reclassify import Reclassify
from worker.usecases.suppress import Suppress

if TYPE_CHECKING:
    from worker.adapters.db import Database
    from worker.adapters.db.oauth_tokens import OAuthTokens
    from worker.adapters.db.people import PeopleRows
    from worker.adapters.db.reclassifications import Reclassifications
    from worker.adapters.db.workspace_rows import WorkspaceRows
    from worker.adapters.http.context import HttpPorts, LoopState
    from worker.adapters.oauth2 import TokenSource

log = logging.getLogger(__name__)


class App:
    """Builds the adapters from settings, lazily, and hands each use-case its ports."""

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.wake_loop: Callable[[], None] | None = None  # the loop's wake, once built
        self.catalogs = CatalogHolder(self._load_catalog)
        self._lock_fd: int | None = None

    # --- the database ---------------------------------------------------------------------------

    @cached_property
    def db(self) -> Database:
        from worker.adapters.db import Database
        from worker.adapters.db.engine import make_engine
        return Database(make_engine(self.settings.database.url, self.settings.database.pool_size),
                        self.clock, self.settings.webhooks.filters())

    # --- campaigns ------------------------------------------------------------------------------

    @property
    def catalog(self) -> Catalog:
        """The campaigns as they are now."""
        return self.catalogs.get()

    def _load_catalog(self) -> Catalog:
        return configured_catalog(self.settings)

    def reload_catalog_if_changed(self) -> bool:
        """Pick up edited campaigns without a restart. True if something changed."""
        signature = disk_signature(self.settings.campaigns_dir, self.settings.templates_dir)
        if signature == self.catalog.signature:
            return False
        fresh = self._load_catalog()
        self.catalogs.replace(fresh)  # the planner and the use-cases read it through get()
        log.info("action=campaigns_reloaded campaigns=%d broken=%d", len(fresh.campaigns),
                 len(fresh.problems))
        self.wake_newsletters()
        return True

    # --- secrets --------------------------------------------------------------------------------

    def secret_key(self, required: bool) -> bytes:
        """The signing key (``app_parts.signing_key``)."""
        return signing_key(self.settings, required)

    @cached_property
    def factory(self) -> MailFactory:
        return MailFactory(self.settings, self.secret_key(required=False),
                           install_tag(self.db.hash_key()))

    def preview_factory(self) -> MailFactory:
        """For `preview`: no database, no secret."""
        return MailFactory(self.settings, self.secret_key(required=False))

    @cached_property
    def planner(self) -> Planner:
        return build_planner(self.settings, self.db, self.current_catalog, self.factory)

    def render_process(self) -> RenderProcess | None:
        """For `nurture run`: render big batches in a second process (the second core)."""
        if not self.settings.worker.render_process:
            return None
        return RenderProcess(self.settings, render_planner, self.factory.key,
                             self.factory.install, configured_catalog)

    def current_catalog(self) -> Catalog:
        """The campaigns as they are now (a reload replaces them while the worker runs)."""
        return self.catalogs.get()

    def wake(self) -> None:
        """Wake the running loop, if there is one (commands and tests run without)."""
        if self.wake_loop is not None:
            self.wake_loop()

    @cached_property
    def suppress(self) -> Suppress:
        return Suppress(self.db.leads)

    @cached_property
    def service(self) -> Intake:
        """Intake: leads in, enrolments, events."""
        return Intake(self.db.leads, self.db.inbox, self.current_catalog, self.clock, self.wake,
                      self.settings.notify.default_owner or None)

    @cached_property
    def by_hand(self) -> ByHand:
        return ByHand(self.db.leads, self.current_catalog, self.clock, self.wake, self.suppress)

    @cached_property
    def inbox(self) -> Inbound:
        from worker.adapters.db.owner_tasks import OwnerTasks  # reply intent; as PeopleRows
        intents = IntentActions(self.db, OwnerTasks(self.db.session), self.db.leads,
                                self.current_catalog, self.clock, self.settings.inbound,
                                self.settings.notify.default_owner)
        return Inbound(self.db, self.current_catalog, self.clock, self.metrics, self.suppress,
                       self.settings.inbound, self.settings.notify,
                       self.secret_key(required=False), intents,
                       lambda: own_addresses(self.settings, self.current_catalog()))

    @cached_property
    def reclassifications(self) -> Reclassifications:  # corrections of a class
        from worker.adapters.db.reclassifications import Reclassifications  # as PeopleRows
        return Reclassifications(self.db.conn)

    @cached_property
    def reclassify(self) -> Reclassify:
        return Reclassify(self.db, self.reclassifications, self.inbox, self.current_catalog,
                          self.clock)

    @cached_property
    def people(self) -> PeopleRows:
        """Read-side rows for the people commands."""
        return self.db.people

    # --- mailbox sign-ins and pauses -------------------------------------------------------------

    @cached_property
    def oauth_tokens(self) -> OAuthTokens:
        """Sealed refresh tokens and mailbox pauses (composed over the session factory)."""
        from worker.adapters.db.oauth_tokens import OAuthTokens
        from worker.adapters.secret_box import SecretBox
        return OAuthTokens(self.db.session,
                           lambda: SecretBox(self.settings.secret_key.reveal()), self.clock.now)

    @cached_property
    def token_sources(self) -> dict[str, TokenSource]:
        """One access-token source per mailbox signing in with OAuth 2.0."""
        from worker.adapters.oauth_sources import token_sources
        return token_sources(self.settings, lambda: self.oauth_tokens)

    @cached_property
    def mailbox_alerts(self) -> MailboxAlerts:
        return MailboxAlerts(self.oauth_tokens, self.db.inbox, self.settings.notify.default_owner)

    @cached_property
    def bounce_guard(self) -> BounceGuard:
        """Holds the mail of stopped mailboxes; pauses one that bounces too much."""
        from worker.adapters.db.mailbox_history import MailboxHistory
        return build_bounce_guard(self.settings, self.oauth_tokens.stopped,
                                  MailboxHistory(self.db.session).recent_outcomes,
                                  self.mailbox_alerts)

    def grant_refused(self, mailbox: str, exc: Exception) -> None:
        """SMTP or IMAP found the mailbox's grant refused: record and alert once."""
        self.mailbox_alerts.grant_refused(mailbox, getattr(exc, "error", "invalid_grant"))


    @cached_property
    def notify(self) -> Notify:
        return Notify(self.db.inbox, self.db.reports, lambda: self.sender, self.settings,
                      self.clock, self.worker_id)

    @cached_property
    def metrics(self) -> Metrics:
        return Metrics()

    # --- doors ----------------------------------------------------------------------------------

    @cached_property
    def sender(self) -> Sender:
        """The outbound door (``app_parts.build_sender``)."""
        return build_sender(self.settings, self.token_sources, self.grant_refused)

    @cached_property
    def inbound(self) -> list[Mailbox]:
        """The inbox watchers (``app_parts.build_mailboxes``)."""
        return build_mailboxes(self.settings, self.inbox, self.db, self.worker_id, self.clock,
                               self.token_sources, self.grant_refused)

    def reset_doors(self) -> None:
        """Forget the mailbox watchers and the sender (they are one-shot), so this App can run
        a worker again (tests run many passes in one process)."""
        self.__dict__.pop("inbound", None)
        self.__dict__.pop("sender", None)

    async def start_http(self, runner: LoopState) -> asyncio.Task[Any] | None:
        if not self.settings.http.enabled:
            return None
        from worker.adapters.http.server import serve
        return await serve(self.http_ports(), runner)

    def http_ports(self) -> HttpPorts:
        """What the HTTP door is given: intake, unsubscribe, its reads, metrics, the key."""
        from worker.adapters.http.context import HttpPorts
        return HttpPorts(self.settings, self.service, self.by_hand, self.db, self.clock,
                         self.metrics, self.inbound, self.secret_key(required=True),
                         self.workspace_mount(),
                         self.oauth_tokens.stopped)  # stopped mailboxes

    # --- the workspace -------------------------------------------------------------------------

    @cached_property
    def workspace_rows(self) -> WorkspaceRows:
        """The workspace's rows (sign-in, sessions, who did what)."""
        from worker.adapters.db.workspace_rows import WorkspaceRows
        return WorkspaceRows(self.db.session)

    def workspace_mount(self) -> Any:
        """The ``/app`` pages for reps and managers; None when ``app.enabled`` is false."""
        if not self.settings.app.enabled:
            return None
        from worker.adapters.workspace.ports import WorkspacePorts
        from worker.adapters.workspace.routes import build
        return build(WorkspacePorts(self.settings, self.workspace_rows, self.by_hand,
                                    self.service, self.current_catalog, self.clock,
                                    self.notify.send, self.secret_key(required=True),
                                    CampaignViews(self.current_catalog, self.db, self.db,
                                                  self.preview_factory(), self.clock), self.reclassify))

    # --- worker lifecycle -----------------------------------------------------------------------

    def start_worker(self) -> None:
        """Refuse a second SQLite worker; register; release stale claims; create Maildirs."""
        from worker.adapters.db.engine import sqlite_path
        self.db.check_schema()
        self.secret_key(required=True)
        path = sqlite_path(self.settings.database.url)
        if path is not None:
            self._lock_fd = lock_sqlite(path)
            released = self.db.release_all_claims()
            if released:
                log.info("action=claims_released_at_start count=%d", released)
        ensure_maildirs(self.settings)
        self.db.register_worker(self.worker_id, socket.gethostname(), os.getpid())
        for slug, problems in self.catalog.problems.items():
            log.warning("action=campaign_broken campaign=%s problems=%d first=%r", slug,
                        len(problems), str(problems[0]))
        self.wake_newsletters()

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

    # --- the loop -----------------------------------------------------------------------------

    def runner_parts(self, once: bool = False) -> dict[str, Any]:
        """The loop's collaborators, as ``Runner``'s keyword arguments (tests swap one)."""
        return dict(settings=self.settings, worker_id=self.worker_id, store=self.db,
                    records=ledger_records(self.db), inline_store=self.db.is_sqlite,
                    sender=self.sender, mailboxes=self.inbound, planner=self.planner,
                    catalog=self.current_catalog, render_process=self.render_process,
                    metrics=self.metrics, clock=self.clock, notify=self.notify,
                    on_bounce=self.suppress.smtp_bounce, guard=self.bounce_guard,
                    start=self.start_worker,
                    stop=self.stop_worker, reset_doors=self.reset_doors,
                    reload_catalog=self.reload_catalog_if_changed,
                    start_http=self.start_http, once=once,
                    jobs=webhook_jobs(self.settings, self.db.outbox, self.clock, self.worker_id,
                                      self.metrics))

    def make_runner(self, once: bool = False, **replace: Any) -> Runner:
        """The worker loop (`nurture run`), wired; ``replace`` swaps collaborators (tests)."""
        runner = Runner(**{**self.runner_parts(once), **replace})
        self.wake_loop = runner.wake
        return runner

