"""The embedded inbox: a Maildir (``var/inbox`` by default) polled for files in ``new/``.

Any file that appears in ``new/`` is handed to the sink; once the sink returned, the file
moves to ``cur/`` with the ``:2,`` info suffix, as Maildir readers do. A file that cannot
be read is logged once and left where it is; nothing is ever deleted.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from worker.adapters.watcher import OnDied, start_watcher
from worker.ports import Checkpoint, CheckpointStore, Clock, InboundSink, RawMessage, SystemClock

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 2 * 1024 * 1024
_SUCCESS_SAVE_EVERY_S = 60.0  # how stale the stored "last inbox check" may get


class MaildirMailbox:
    """Watches a Maildir for the ``Mailbox`` port (see ``worker.ports``)."""

    def __init__(self, name: str, path: str | os.PathLike[str], sink: InboundSink, *,
                 poll_interval_s: float = 1.0, max_bytes: int = DEFAULT_MAX_BYTES,
                 checkpoints: CheckpointStore | None = None, clock: Clock | None = None,
                 folder: str = "INBOX") -> None:
        self.name = name
        self.path = Path(path)
        self.folder = folder
        self.poll_interval_s = poll_interval_s
        self.max_bytes = max_bytes
        self._sink = sink
        self._checkpoints = checkpoints
        self._clock: Clock = clock or SystemClock()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._last_success_at: datetime | None = None
        self._saved_at = 0.0
        self._unreadable: set[str] = set()

    def ensure_maildir(self) -> None:
        """Create ``tmp/``, ``new/`` and ``cur/`` if missing."""
        for sub in ("tmp", "new", "cur"):
            (self.path / sub).mkdir(parents=True, exist_ok=True)

    # -- the Mailbox port -----------------------------------------------------------------

    def start(self, stop: threading.Event, on_died: OnDied | None = None) -> None:
        """Create the Maildir and start polling ``new/`` in a background thread; ``on_died``
        hears of an exception that ends the thread (an unreadable file is retried instead)."""
        if self._thread is not None and self._thread.is_alive():
            raise RuntimeError(f"mailbox {self.name} is already running")
        self.ensure_maildir()
        self._stop = stop
        self._thread = start_watcher(self.name, f"maildir-{self.name}", self._run, on_died)

    def join(self, timeout_s: float) -> None:
        """Wait for the polling thread to finish (after ``stop`` was set)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def fence(self, timeout_s: float) -> bool:
        """Hand every file now in ``new/`` to the sink before returning (False on timeout
        or when the sink failed)."""
        if not self._lock.acquire(timeout=max(timeout_s, 0.0)):
            return False
        try:
            return self._scan_locked()
        finally:
            self._lock.release()

    @property
    def last_success_at(self) -> datetime | None:
        """When ``new/`` was last read completely."""
        return self._last_success_at

    def scan(self) -> bool:
        """Read ``new/`` once; True if every readable file was handed over."""
        with self._lock:
            return self._scan_locked()

    # -- internals ------------------------------------------------------------------------

    def _run(self) -> None:
        log.info("action=maildir_watch mailbox=%s path=%s poll_interval_s=%s",
                 self.name, self.path, self.poll_interval_s)
        while not self._stop.is_set():
            try:
                self.scan()
            except Exception:  # the watcher must outlive any error
                log.exception("action=maildir_scan_failed mailbox=%s", self.name)
            self._stop.wait(self.poll_interval_s)
        log.info("action=maildir_stopped mailbox=%s", self.name)

    def _scan_locked(self) -> bool:
        new_dir = self.path / "new"
        try:
            entries = [e for e in os.scandir(new_dir) if not e.name.startswith(".")]
        except FileNotFoundError:
            self.ensure_maildir()
            entries = []
        except OSError as exc:
            log.warning("action=maildir_unreadable mailbox=%s path=%s error=%r",
                        self.name, new_dir, str(exc))
            return False

        def mtime(entry: os.DirEntry[str]) -> int:
            try:
                return entry.stat().st_mtime_ns
            except OSError:
                return 0

        # Oldest first, so replies are seen in the order they arrived.
        entries.sort(key=lambda e: (mtime(e), e.name))
        self._unreadable &= {e.name for e in entries}
        for entry in entries:
            message = self._read(entry)
            if message is None:
                continue
            try:
                self._sink.handle(message)
            except Exception as exc:  # noqa: BLE001 - leave the file; the next scan retries
                log.warning("action=maildir_sink_failed mailbox=%s file=%s error=%r",
                            self.name, entry.name, f"{type(exc).__name__}: {exc}")
                return False
            self._move_to_cur(entry.name)
        self._succeeded()
        return True

    def _read(self, entry: os.DirEntry[str]) -> RawMessage | None:
        try:
            with open(entry.path, "rb") as fh:
                stat = os.fstat(fh.fileno())
                data = fh.read(self.max_bytes)
        except FileNotFoundError:
            return None  # another reader took it meanwhile
        except OSError as exc:
            if entry.name not in self._unreadable:
                self._unreadable.add(entry.name)
                log.warning("action=maildir_unreadable mailbox=%s file=%s error=%r",
                            self.name, entry.name, str(exc))
            return None
        return RawMessage(mailbox=self.name, folder=self.folder, uid=entry.name, uidvalidity=0,
                          data=data, size=stat.st_size,
                          received_at=datetime.fromtimestamp(stat.st_mtime, UTC))

    def _move_to_cur(self, name: str) -> None:
        target = name if ":2," in name else f"{name}:2,"
        try:
            os.rename(self.path / "new" / name, self.path / "cur" / target)
        except FileNotFoundError:
            pass  # moved by another reader; it was handed over either way
        except OSError as exc:
            # Handed over but stuck in new/: it will be handed again, which the sink ignores.
            log.warning("action=maildir_move_failed mailbox=%s file=%s error=%r",
                        self.name, name, str(exc))

    def _succeeded(self) -> None:
        self._last_success_at = self._clock.now()
        if self._checkpoints is None:
            return
        if time.monotonic() - self._saved_at < _SUCCESS_SAVE_EVERY_S and self._saved_at:
            return
        try:
            self._checkpoints.save_checkpoint(self.name, self.folder, Checkpoint(0, 0),
                                              self._last_success_at)
            self._saved_at = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - only the status display depends on it
            log.warning("action=maildir_checkpoint_failed mailbox=%s error=%r",
                        self.name, str(exc))
