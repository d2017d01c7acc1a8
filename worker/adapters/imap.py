"""The IMAP inbox watcher: one thread per mailbox, IDLE (or polling), checkpoints, fences.

Every message of the folder is handed to the sink in UID order; the checkpoint moves only
after the sink returned (and after the optional flag/move), so a crash repeats work instead
of skipping it, and the sink's idempotence turns a repeat into nothing. A UIDVALIDITY change
rescans the folder from UID 1 for the same reason. Only the worker holding the watch lease
watches; any worker can ``fence`` (a one-off read that does not move the checkpoint).
"""

from __future__ import annotations

import logging
import select
import ssl
import threading
import time
from collections.abc import Callable
from datetime import datetime

from worker.adapters.imap_fences import FenceQueue
from worker.adapters.imap_session import ImapSession, backoff_s
from worker.adapters.oauth2 import TokenSource
from worker.adapters.watcher import OnDied, start_watcher
from worker.config import ImapSettings
from worker.errors import GrantRevokedError, MailboxError
from worker.ports import Checkpoint, CheckpointStore, Clock, InboundSink, RawMessage, SystemClock

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
_CHECKPOINT_EVERY = 50   # messages handled between checkpoint saves during a long rescan
_SUCCESS_SAVE_EVERY_S = 60.0  # how stale the stored "last inbox check" may get
REVOKED_RETRY_S = 60.0  # a mailbox whose grant was refused looks for a new sign-in this often


class _LeaseLost(Exception):
    """Another worker watches this mailbox now."""


class ImapMailbox:
    """Watches one IMAP folder for the ``Mailbox`` port (see ``worker.ports``)."""

    def __init__(self, name: str, settings: ImapSettings, sink: InboundSink,
                 checkpoints: CheckpointStore, worker_id: str, *,
                 max_bytes: int = DEFAULT_MAX_BYTES, lease_s: float = 30.0,
                 idle_check_s: float = 0.25, ssl_context: ssl.SSLContext | None = None,
                 clock: Clock | None = None,
                 backoff: Callable[[int], float] = backoff_s,
                 tokens: TokenSource | None = None,
                 on_revoked: Callable[[str, GrantRevokedError], None] | None = None) -> None:
        self.name = name
        self.settings = settings
        self.folder = settings.folder
        self.worker_id = worker_id
        self.max_bytes = max_bytes
        self.lease_s = lease_s
        self.idle_check_s = idle_check_s
        self._sink = sink
        self._checkpoints = checkpoints
        self._ssl_context = ssl_context
        self._tokens = tokens  # imap.auth = "oauth2": the mailbox's access tokens
        self._on_revoked = on_revoked
        self._clock: Clock = clock or SystemClock()
        self._backoff = backoff
        self._fences = FenceQueue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._holds_lease = False
        self._lease_renewed_at = 0.0
        self._checkpoint: Checkpoint | None = None
        self._saved_at = time.monotonic()
        self._last_success_at: datetime | None = None
        self._oneoff_lock = threading.Lock()
        self._oneoff: ImapSession | None = None
        self._oneoff_seen: Checkpoint | None = None

    # -- the Mailbox port -----------------------------------------------------------------

    def start(self, stop: threading.Event, on_died: OnDied | None = None) -> None:
        """Start the watcher thread; it runs until ``stop`` is set (again after a join).
        ``on_died`` hears of an exception that ends the thread (its retries aside)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"mailbox {self.name} is already running")
        self._stop = stop
        self._fences.open()
        self._thread = start_watcher(self.name, f"imap-{self.name}", self._run, on_died)

    def join(self, timeout_s: float) -> None:
        """Wait for the watcher thread to finish (after ``stop`` was set)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def fence(self, timeout_s: float) -> bool:
        """Block until every message in the folder now has been handed to the sink."""
        deadline = time.monotonic() + timeout_s
        answer = self._fences.ask(timeout_s)
        if answer is not None:
            return answer
        # No watcher of ours is connected (another worker watches, or ours reconnects).
        return self._sync_once(deadline)

    @property
    def last_success_at(self) -> datetime | None:
        """When the folder was last read up to date (by the watcher or a fence)."""
        return self._last_success_at

    @property
    def is_watching(self) -> bool:
        """True while this instance holds the watch lease and is connected."""
        return self._fences.serving

    # -- the watcher thread ---------------------------------------------------------------

    def _run(self) -> None:
        attempt = 0
        try:
            while not self._stop.is_set():
                if not self._acquire():
                    self._stop.wait(self.lease_s / 3)
                    continue
                session: ImapSession | None = None
                delay_s = 0.0
                try:
                    session = ImapSession.open(self.settings, readonly=self._readonly,
                                               timeout_s=self.settings.timeout_s,
                                               ssl_context=self._ssl_context,
                                               tokens=self._tokens)
                    self._checkpoint = self._checkpoints.load_checkpoint(self.name, self.folder)
                    self._sync(session)
                    self._fences.set_serving(True)
                    attempt = 0
                    log.info("action=imap_watch mailbox=%s folder=%s mode=%s worker=%s",
                             self.name, self.folder,
                             "idle" if self._use_idle(session) else "poll", self.worker_id)
                    self._watch(session)
                except _LeaseLost:
                    log.warning("action=imap_watch_lost mailbox=%s worker=%s",
                                self.name, self.worker_id)
                    self._holds_lease = False
                    delay_s = self.lease_s / 3
                except GrantRevokedError as exc:
                    # Reconnecting cannot help: watching stops until someone signs in again
                    # (the token source picks the new sign-in up on the next try).
                    log.error("action=imap_grant_revoked mailbox=%s error=%s", self.name,
                              exc.error)
                    if self._on_revoked is not None:
                        self._on_revoked(self.name, exc)
                    delay_s = REVOKED_RETRY_S
                except Exception as exc:  # noqa: BLE001 - the watcher must outlive any error
                    attempt += 1
                    delay_s = self._backoff(attempt)
                    log.warning("action=imap_reconnect mailbox=%s attempt=%d delay_s=%.2f "
                                "error=%r", self.name, attempt, delay_s, _text(exc))
                finally:
                    self._fences.set_serving(False)
                    if session is not None:
                        session.close()
                if delay_s:
                    self._stop.wait(delay_s)
        finally:
            self._shutdown()

    def _watch(self, session: ImapSession) -> None:
        use_idle = self._use_idle(session)
        while not self._stop.is_set():
            if use_idle:
                session.idle_wait(self._fences.wake_fd, self.settings.idle_renew_s,
                                  self.idle_check_s, self._should_leave)
            else:
                self._poll_wait(self.settings.poll_interval_s)
            if not self._holds_lease:
                raise _LeaseLost
            if self._stop.is_set():
                return
            fences = self._fences.take()
            try:
                self._sync(session)
            except BaseException:
                # The callers read on their own connection meanwhile.
                self._fences.answer(fences, ok=False)
                raise
            self._fences.answer(fences, ok=True)

    def _sync(self, session: ImapSession) -> None:
        """Hand every message after the checkpoint to the sink, until the server has
        nothing more to announce; checkpoint after the work."""
        self._sync_round(session)
        while session.announced_new_mail():
            self._sync_round(session)
        self._last_success_at = self._clock.now()

    def _sync_round(self, session: ImapSession) -> None:
        if self._checkpoint is None and not self.settings.read_existing:
            self._first_start(session)
        checkpoint = self._checkpoint
        after = 0
        if checkpoint is not None and checkpoint.uidvalidity == session.uidvalidity:
            after = checkpoint.last_uid
        elif checkpoint is not None:
            log.warning("action=imap_uidvalidity_changed mailbox=%s folder=%s old=%d new=%d",
                        self.name, self.folder, checkpoint.uidvalidity, session.uidvalidity)
        uids = session.uids_after(after)
        pending: list[int] = []
        last = after
        try:
            for fetched in session.fetch(uids, self.max_bytes):
                self._sink.handle(self._raw(session, fetched.uid, fetched.data, fetched.size,
                                            fetched.received_at))
                pending.append(fetched.uid)
                if len(pending) >= _CHECKPOINT_EVERY:
                    session.finish(pending)
                    last, pending = pending[-1], []
                    self._save(session.uidvalidity, last)
                    if not self._renew_if_due():
                        raise _LeaseLost
        except BaseException:
            # Keep what was fully handled before the failure; the rest is read again.
            if pending:
                try:
                    session.finish(pending)
                    self._save(session.uidvalidity, pending[-1])
                except Exception:  # the original error matters more
                    log.debug("action=imap_checkpoint_failed mailbox=%s", self.name,
                              exc_info=True)
            raise
        session.finish(pending)
        # UIDs expunged between SEARCH and FETCH are gone for good: step over them too.
        self._save(session.uidvalidity, max([last, *uids]))

    def _first_start(self, session: ImapSession) -> None:
        """No stored place: a new installation (or a fresh database) pointed at a mailbox
        that may hold years of mail. Only what arrives from now on is read (``read_existing``
        reads it all), so old replies do not stop or suppress today's leads."""
        last = session.last_uid_at_open()
        log.info("action=imap_first_start mailbox=%s folder=%s existing_skipped_up_to_uid=%d",
                 self.name, self.folder, last)
        self._save(session.uidvalidity, last)

    def _save(self, uidvalidity: int, last_uid: int) -> None:
        checkpoint = Checkpoint(uidvalidity, last_uid)
        # Unchanged checkpoints are saved now and then too: the stored success time is
        # the "last inbox check" that other processes (nurture status) can see.
        stale = time.monotonic() - self._saved_at > _SUCCESS_SAVE_EVERY_S
        if checkpoint != self._checkpoint or stale:
            self._checkpoints.save_checkpoint(self.name, self.folder, checkpoint,
                                              self._clock.now())
            self._checkpoint = checkpoint
            self._saved_at = time.monotonic()

    def _poll_wait(self, max_s: float) -> None:
        until = time.monotonic() + max_s
        poller = select.poll()
        poller.register(self._fences.wake_fd, select.POLLIN)
        while not self._should_leave():
            left = until - time.monotonic()
            if left <= 0:
                return
            poller.poll(min(self.idle_check_s, left) * 1000)

    def _should_leave(self) -> bool:
        """Asked every ``idle_check_s`` while waiting: stop, a fence, or a lost lease."""
        if self._stop.is_set() or not self._renew_if_due():
            return True
        return self._fences.pending()

    # -- the watch lease ------------------------------------------------------------------

    def _acquire(self) -> bool:
        try:
            got = self._checkpoints.acquire_watch(self.name, self.worker_id, self.lease_s)
        except Exception as exc:  # noqa: BLE001 - a database hiccup: try again later
            log.warning("action=imap_lease_error mailbox=%s error=%r", self.name, _text(exc))
            return False
        if got:
            self._holds_lease = True
            self._lease_renewed_at = time.monotonic()
        return got

    def _renew_if_due(self) -> bool:
        """Renew every lease_s/3; False once another worker took the lease."""
        if not self._holds_lease:
            return False
        if time.monotonic() - self._lease_renewed_at < self.lease_s / 3:
            return True
        try:
            renewed = self._checkpoints.acquire_watch(self.name, self.worker_id, self.lease_s)
        except Exception as exc:  # noqa: BLE001 - keep watching; duplicates are harmless
            log.warning("action=imap_lease_error mailbox=%s error=%r", self.name, _text(exc))
            return True
        if renewed:
            self._lease_renewed_at = time.monotonic()
        else:
            self._holds_lease = False
        return renewed

    # -- fences outside the watcher -------------------------------------------------------

    def _sync_once(self, deadline: float) -> bool:
        """Read the folder on a separate connection without moving the checkpoint."""
        if not self._oneoff_lock.acquire(timeout=max(deadline - time.monotonic(), 0)):
            return False
        try:
            for _ in range(2):
                reused = self._oneoff is not None
                try:
                    self._read_once(deadline)
                    return True
                except Exception as exc:  # noqa: BLE001 - the caller decides what to do
                    self._close_oneoff()
                    if reused and time.monotonic() < deadline:
                        continue  # a cached connection had died; one fresh try
                    log.warning("action=imap_fence_failed mailbox=%s error=%r",
                                self.name, _text(exc))
                    return False
            return False
        finally:
            if self._stop.is_set():
                self._close_oneoff()
            self._oneoff_lock.release()

    def _read_once(self, deadline: float) -> None:
        timeout_s = min(self.settings.timeout_s, deadline - time.monotonic())
        if timeout_s <= 0:
            raise MailboxError("fence timed out")
        if self._oneoff is None:
            self._oneoff = ImapSession.open(self.settings, readonly=True, timeout_s=timeout_s,
                                            ssl_context=self._ssl_context,
                                            tokens=self._tokens)
        session = self._oneoff
        session.set_timeout(timeout_s)
        checkpoint = self._checkpoints.load_checkpoint(self.name, self.folder)
        after = 0
        if checkpoint is not None and checkpoint.uidvalidity == session.uidvalidity:
            after = checkpoint.last_uid
        elif checkpoint is None and not self.settings.read_existing:
            after = session.last_uid_at_open()  # before any first start: old mail stays old
        seen = self._oneoff_seen
        if seen is not None and seen.uidvalidity == session.uidvalidity:
            after = max(after, seen.last_uid)
        uids = session.uids_after(after)
        for fetched in session.fetch(uids, self.max_bytes):
            if time.monotonic() > deadline:
                raise MailboxError("fence timed out")
            self._sink.handle(self._raw(session, fetched.uid, fetched.data, fetched.size,
                                        fetched.received_at))
            self._oneoff_seen = Checkpoint(session.uidvalidity, fetched.uid)
        self._oneoff_seen = Checkpoint(session.uidvalidity, max([after, *uids]))
        self._last_success_at = self._clock.now()

    def _close_oneoff(self) -> None:
        if self._oneoff is not None:
            self._oneoff.close()
            self._oneoff = None

    # -- small helpers --------------------------------------------------------------------

    @property
    def _readonly(self) -> bool:
        return not (self.settings.move_to or self.settings.flag)

    def _use_idle(self, session: ImapSession) -> bool:
        return self.settings.idle and session.can_idle

    def _raw(self, session: ImapSession, uid: int, data: bytes, size: int,
             received_at: datetime | None) -> RawMessage:
        return RawMessage(mailbox=self.name, folder=self.folder, uid=str(uid),
                          uidvalidity=session.uidvalidity, data=data, size=size,
                          received_at=received_at)

    def _shutdown(self) -> None:
        self._fences.close()
        if self._holds_lease:
            try:
                self._checkpoints.release_watch(self.name, self.worker_id)
            except Exception as exc:  # noqa: BLE001 - the lease expires by itself
                log.warning("action=imap_lease_error mailbox=%s error=%r", self.name, _text(exc))
            self._holds_lease = False
        with self._oneoff_lock:
            self._close_oneoff()
        log.info("action=imap_stopped mailbox=%s worker=%s", self.name, self.worker_id)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
