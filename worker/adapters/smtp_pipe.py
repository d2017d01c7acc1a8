"""SMTP PIPELINING (RFC 2920) on a connection that aiosmtplib opened.

aiosmtplib connects, says EHLO, upgrades to TLS and authenticates; it reads one reply per
command and drops bytes that arrive while no reply is awaited, so it cannot pipeline. When
the server offers PIPELINING, the channel hands the connection's transport to ``Pipe``,
which sends MAIL, RCPT and DATA in one write and reads the three replies from whatever
segments they arrive in: two writes per mail instead of four, and fewer wake-ups.
"""

from __future__ import annotations

import asyncio
from collections import deque

import aiosmtplib

MAX_REPLY = 64 * 1024  # a reply longer than this is not SMTP


class Pipe(asyncio.Protocol):
    """The replies of one SMTP connection, in order; written through the same transport."""

    def __init__(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self._buffer = bytearray()
        self._lines: list[str] = []
        self._replies: deque[tuple[int, str]] = deque()
        self._waiter: asyncio.Future[None] | None = None
        self.error: Exception | None = None
        transport.set_protocol(self)

    @property
    def usable(self) -> bool:
        """Whether the connection can still be written to."""
        return self.error is None and not self.transport.is_closing()

    def write(self, data: bytes) -> None:
        """Send bytes to the server."""
        if not self.usable:
            raise aiosmtplib.SMTPServerDisconnected("Connection lost")
        self.transport.write(data)  # type: ignore[attr-defined]

    async def reply(self) -> tuple[int, str]:
        """The next reply: (code, text), continuation lines joined by newlines."""
        while not self._replies:
            if self.error is not None:
                raise self.error
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        return self._replies.popleft()

    def close(self) -> None:
        """Close the connection."""
        self.transport.close()

    # --- asyncio.Protocol -----------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Collect the server's answer lines."""
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = self._buffer[:end].rstrip(b"\r").decode("utf-8", "replace")
            del self._buffer[:end + 1]
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                self._fail(aiosmtplib.SMTPResponseException(-1, f"malformed reply: {line[:80]!r}"))
                return
            self._lines.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                self._replies.append((int(line[:3]), "\n".join(self._lines)))
                self._lines = []
        if len(self._buffer) > MAX_REPLY:
            self._fail(aiosmtplib.SMTPResponseException(-1, "reply too long"))
            return
        self._wake()

    def eof_received(self) -> bool:
        """The server closed its side."""
        self._fail(aiosmtplib.SMTPServerDisconnected("Unexpected EOF received"))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is gone: wake whoever waits."""
        self._fail(aiosmtplib.SMTPServerDisconnected(f"Connection lost: {exc}" if exc
                                                     else "Connection lost"))

    def _fail(self, error: Exception) -> None:
        if self.error is None:
            self.error = error
        if not self.transport.is_closing():
            self.transport.close()
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)
