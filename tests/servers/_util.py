"""Small helpers shared by the test servers: free ports, readiness waits, running as another user."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import pytest


class ServerUnavailable(pytest.skip.Exception):  # type: ignore[misc,name-defined]
    """The server's binaries are missing: inside pytest this skips the test, with the reason.

    Outside pytest (benchmarks) it is a BaseException carrying the same message.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason, allow_module_level=True)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the server binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float, what: str,
                  banner: bytes | None = None) -> None:
    """Block until something accepts connections on host:port (and sends ``banner``)."""
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                if banner is None:
                    return
                data = sock.recv(1024)
                if data.startswith(banner):
                    return
                last = RuntimeError(f"unexpected greeting {data!r}")
        except OSError as exc:
            last = exc
        time.sleep(0.02)
    raise RuntimeError(f"{what} did not come up on {host}:{port} within {timeout_s}s: {last}")


@dataclass(frozen=True)
class RunAs:
    """The unprivileged account a server runs as when the suite itself runs as root."""

    name: str
    uid: int
    gid: int

    @classmethod
    def current(cls) -> RunAs:
        entry = pwd.getpwuid(os.geteuid())
        return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)

    @classmethod
    def first_of(cls, *names: str) -> RunAs:
        """The first of ``names`` that exists on this machine (root only), else the current user."""
        if os.geteuid() != 0:
            return cls.current()
        for name in names:
            try:
                entry = pwd.getpwnam(name)
            except KeyError:
                continue
            return cls(entry.pw_name, entry.pw_uid, entry.pw_gid)
        raise ServerUnavailable(f"running as root but none of the users {names} exists")

    def chown(self, *paths: str | os.PathLike[str]) -> None:
        """Give ``paths`` to this account (only possible, and only needed, as root)."""
        if os.geteuid() != 0:
            return
        for path in paths:
            os.chown(path, self.uid, self.gid)


def healthz_s(port: int, host: str = "127.0.0.1") -> float:
    """Seconds a worker's /healthz took to answer (inf when it did not answer within 30 s)."""
    started = time.monotonic()
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=30) as answer:
            answer.read()
    except OSError:
        return float("inf")
    return time.monotonic() - started


class TempDirServer:
    """A server the tests run from its own temp dir (``tmp``, with its log at ``log``):
    closing stops it and deletes the dir; usable as a context manager."""

    tmp: Path
    log: Path
    log_chars = 2000

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Stop and delete the temp dir."""
        self.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def log_tail(self, chars: int | None = None) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log.read_text(errors="replace")[-(chars or self.log_chars):]
        except OSError:
            return ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
