"""Fence requests for an inbox watcher thread, and the pipe that wakes it up at once.

A caller's ``fence`` must not touch the watcher's IMAP connection (imapclient is not
thread-safe), so it queues a request and writes one byte to a pipe that the watcher polls
together with its socket, in IDLE or between polls. The watcher syncs and answers.
"""

from __future__ import annotations

import contextlib
import os
import threading


class _Request:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.ok = False


class FenceQueue:
    """Requests waiting for the watcher's next sync; open only while a watcher serves."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: list[_Request] = []
        self._serving = False
        self._read_fd = self._write_fd = -1

    def open(self) -> None:
        """Create the wake-up pipe (once, when the watcher thread starts)."""
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)

    @property
    def wake_fd(self) -> int:
        """The descriptor the watcher polls; readable when a request is waiting."""
        return self._read_fd

    @property
    def serving(self) -> bool:
        """Whether a connected watcher answers requests now."""
        return self._serving

    def set_serving(self, serving: bool) -> None:
        """Open or close the queue; closing releases waiting callers to read on their own."""
        with self._lock:
            self._serving = serving
            if not serving:
                self._release(self._requests, ok=False)
                self._requests = []

    def ask(self, timeout_s: float) -> bool | None:
        """Wait for the watcher's next sync: True when done, False on timeout, None when no
        watcher serves (or it lost its connection meanwhile)."""
        request = _Request()
        with self._lock:
            if not self._serving:
                return None
            self._requests.append(request)
            with contextlib.suppress(OSError):  # a full pipe: the watcher wakes up anyway
                os.write(self._write_fd, b"x")
        if not request.done.wait(timeout_s):
            with self._lock:
                if request in self._requests:
                    self._requests.remove(request)
            return request.ok or False
        return True if request.ok else None

    def pending(self) -> bool:
        """Whether requests wait (and empty the pipe); called by the watcher."""
        try:
            while os.read(self._read_fd, 4096):
                pass
        except OSError:
            pass  # empty (EAGAIN) or already closed
        with self._lock:
            return bool(self._requests)

    def take(self) -> list[_Request]:
        """The requests a sync starting now will answer."""
        with self._lock:
            taken, self._requests = self._requests, []
            return taken

    def answer(self, requests: list[_Request], ok: bool) -> None:
        """Tell the callers of ``requests`` how their sync went (False: retry on their own)."""
        with self._lock:
            self._release(requests, ok)

    def close(self) -> None:
        """Stop serving and close the pipe (when the watcher thread ends)."""
        with self._lock:
            self._serving = False
            self._release(self._requests, ok=False)
            self._requests = []
            for fd in (self._read_fd, self._write_fd):
                if fd >= 0:
                    os.close(fd)
            self._read_fd = self._write_fd = -1

    @staticmethod
    def _release(requests: list[_Request], ok: bool) -> None:
        for request in requests:
            request.ok = ok
            request.done.set()
