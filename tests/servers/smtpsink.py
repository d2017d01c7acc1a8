"""Postfix's smtp-sink as a fast SMTP endpoint for benchmarks, with a message counter."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from typing import Self

from tests.servers._util import RunAs, ServerUnavailable, free_port, wait_for_port

SMTP_SINK = "/usr/sbin/smtp-sink"
_COUNTERS = re.compile(rb"sess=(\d+) quit=(\d+) mesg=(\d+)")


class SmtpSink:
    """``smtp-sink -c 127.0.0.1:PORT BACKLOG``: accepts and discards every message.

    ``-c`` makes smtp-sink print ``sess=N quit=N mesg=N`` on stdout after every message
    and session; a reader thread keeps the latest numbers, so counting costs nothing.
    """

    def __init__(self, backlog: int = 256, extra_args: tuple[str, ...] = ()) -> None:
        if not os.path.exists(SMTP_SINK):
            raise ServerUnavailable("smtp-sink not found; apt-get install postfix")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.backlog = backlog
        self.extra_args = extra_args
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None
        self._lock = threading.Condition()
        self._sessions = 0
        self._messages = 0

    def start(self) -> Self:
        """Start listening; return self."""
        cmd = [SMTP_SINK, "-c"]
        if os.geteuid() == 0:
            # smtp-sink insists on dropping root privileges after binding the socket.
            cmd += ["-u", RunAs.first_of("nobody").name]
        cmd += [*self.extra_args, f"{self.host}:{self.port}", str(self.backlog)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self._reader = threading.Thread(target=self._read, name="smtp-sink-counter",
                                        daemon=True)
        self._reader.start()
        try:
            wait_for_port(self.host, self.port, 10.0, "smtp-sink", banner=b"220")
        except RuntimeError:
            self.stop()
            raise
        return self

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        fd = self._proc.stdout.fileno()
        buffer = b""
        while True:
            chunk = os.read(fd, 65536)
            if not chunk:
                return
            buffer += chunk
            *complete, buffer = re.split(rb"[\r\n]", buffer)
            for line in reversed(complete):
                match = _COUNTERS.search(line)
                if match:
                    with self._lock:
                        self._sessions = int(match.group(1))
                        self._messages = int(match.group(3))
                        self._lock.notify_all()
                    break

    @property
    def count(self) -> int:
        """Messages accepted so far (each RCPT set + DATA counts once)."""
        with self._lock:
            return self._messages

    @property
    def sessions(self) -> int:
        """SMTP sessions ended so far."""
        with self._lock:
            return self._sessions

    def wait_for(self, count: int, timeout_s: float = 30.0) -> int:
        """Block until ``count`` messages were accepted; return the count; raise on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._messages < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"smtp-sink accepted {self._messages} of {count}")
                self._lock.wait(left)
            return self._messages

    def stop(self) -> None:
        """Stop smtp-sink."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
