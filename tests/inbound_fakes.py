"""In-memory fakes of OUR inbound ports (InboundSink, CheckpointStore) for adapter tests.

Only Nurture's own interfaces are faked; the mail servers in these tests are real.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from worker.ports import Checkpoint, RawMessage


def header_block(data: bytes) -> bytes:
    """The message's header block (everything before the first empty line)."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        index = data.find(separator)
        if index >= 0:
            return data[:index]
    return data


@dataclass
class Handed:
    """One call of ``handle``: the message, whether it was new, and when (monotonic)."""

    message: RawMessage
    new: bool
    at: float


@dataclass
class RecordingSink:
    """Records every message once (deduplicated by the sha256 of its header block)."""

    fail_times: int = 0
    calls: list[Handed] = field(default_factory=list)
    records: dict[str, RawMessage] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)

    def handle(self, message: RawMessage) -> bool:
        with self._changed:
            if self.fail_times > 0:
                self.fail_times -= 1
                raise RuntimeError("the sink's database is down")
            key = hashlib.sha256(header_block(message.data)).hexdigest()
            new = key not in self.records
            if new:
                self.records[key] = message
            self.calls.append(Handed(message, new, time.monotonic()))
            self._changed.notify_all()
            return new

    def wait_for_records(self, count: int, timeout_s: float = 5.0) -> list[RawMessage]:
        """Block until ``count`` distinct messages were recorded; raise on timeout."""
        return self._wait(lambda: len(self.records) >= count, timeout_s,
                          f"{count} records")

    def wait_for_calls(self, count: int, timeout_s: float = 5.0) -> None:
        """Block until ``handle`` was called ``count`` times; raise on timeout."""
        self._wait(lambda: len(self.calls) >= count, timeout_s, f"{count} calls")

    def _wait(self, done: object, timeout_s: float, what: str) -> list[RawMessage]:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not done():  # type: ignore[operator]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"waited {timeout_s}s for {what}; have "
                                       f"{len(self.records)} records, {len(self.calls)} calls")
                self._changed.wait(left)
            return list(self.records.values())

    def recorded_at(self, marker: bytes) -> float | None:
        """When the first message containing ``marker`` was handed over (monotonic)."""
        with self._changed:
            for call in self.calls:
                if marker in call.message.data:
                    return call.at
        return None

    def uids(self) -> list[str]:
        """UIDs of every call, in call order (duplicates included)."""
        with self._changed:
            return [call.message.uid for call in self.calls]


class MemoryCheckpoints:
    """Checkpoints and watch leases in memory, shared by several watchers like a database."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.checkpoints: dict[tuple[str, str], Checkpoint] = {}
        self.saves: list[tuple[Checkpoint, datetime]] = []
        self.leases: dict[str, tuple[str, float]] = {}
        self.holders: list[str] = []

    def load_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        with self._lock:
            return self.checkpoints.get((mailbox, folder))

    def save_checkpoint(self, mailbox: str, folder: str, checkpoint: Checkpoint,
                        success_at: datetime) -> None:
        assert success_at.tzinfo is not None
        with self._lock:
            self.checkpoints[(mailbox, folder)] = checkpoint
            self.saves.append((checkpoint, success_at))

    def acquire_watch(self, mailbox: str, worker_id: str, lease_s: float) -> bool:
        now = time.monotonic()
        with self._lock:
            holder = self.leases.get(mailbox)
            if holder is not None and holder[0] != worker_id and holder[1] > now:
                return False
            self.leases[mailbox] = (worker_id, now + lease_s)
            if not self.holders or self.holders[-1] != worker_id:
                self.holders.append(worker_id)
            return True

    def release_watch(self, mailbox: str, worker_id: str) -> None:
        with self._lock:
            if self.leases.get(mailbox, ("", 0.0))[0] == worker_id:
                del self.leases[mailbox]

    def holder(self, mailbox: str) -> str | None:
        """Who holds an unexpired lease on ``mailbox`` now."""
        with self._lock:
            held = self.leases.get(mailbox)
            return held[0] if held and held[1] > time.monotonic() else None
