"""The embedded default's outbound door: each mail becomes one file in a Maildir.

Written in ``tmp/`` and renamed into ``new/`` (Maildir's delivery protocol), so a reader never
sees half a mail; nothing else is written there.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import time
from pathlib import Path

from worker.errors import TransientDeliveryError
from worker.ports import Envelope, Gate, SendResult


def ensure_maildir(root: Path) -> None:
    """The Maildir's folders, created mode 700: mails name leads and carry their data."""
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for sub in ("tmp", "new", "cur"):
        (root / sub).mkdir(mode=0o700, exist_ok=True)


class MaildirChannel:
    """One "connection" to the outbox folder."""
    _counter = itertools.count()

    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = socket.gethostname().replace("/", "_").replace(":", "_")

    async def send(self, envelope: Envelope, gate: Gate | None = None) -> SendResult | None:
        """Write one mail into the folder."""
        if gate is not None and not await gate.allowed():
            return None
        # fsync blocks: keep it off the event loop.
        return await asyncio.to_thread(self._write, envelope)

    def _write(self, envelope: Envelope) -> SendResult:
        name = f"{time.time_ns()}.P{os.getpid()}Q{next(self._counter)}.{self.host}"
        tmp = self.root / "tmp" / name
        data = envelope.data.replace(b"\r\n", b"\n")
        try:
            # Mode 600 from the start (not chmod after): nobody else may read a lead's mail.
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as handle:
                handle.write(f"Return-Path: <{envelope.mail_from}>\nDelivered-To: "
                             f"{envelope.rcpt_to}\n".encode())
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, self.root / "new" / name)
        except OSError as exc:
            raise TransientDeliveryError(None, f"cannot write to {self.root}: {exc}") from None
        return SendResult(250, f"written to {self.root / 'new' / name}")

    async def close(self) -> None:
        """Nothing to close."""
        return None


class MaildirSender:
    """The ``Sender`` port over a local Maildir (the embedded default)."""

    def __init__(self, root: Path, connections: int = 1) -> None:
        self.root = root
        self.connections = connections
        ensure_maildir(root)

    def channels_for(self, mailbox: str) -> int:
        """How many channels a mailbox gets."""
        return self.connections

    async def open_channel(self, mailbox: str) -> MaildirChannel:
        """A channel writing into the folder."""
        return MaildirChannel(self.root)

    async def close(self) -> None:
        """Nothing to close."""
        return None
