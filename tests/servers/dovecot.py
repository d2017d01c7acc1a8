"""A private Dovecot IMAP server with passwd-file users and Maildir storage in a temp dir."""

from __future__ import annotations

import contextlib
import grp
import os
import re
import secrets
import signal
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Self

from tests.servers._util import RunAs, ServerUnavailable, TempDirServer, free_port, wait_for_port
from tests.servers.certs import client_context, make_self_signed

if TYPE_CHECKING:
    from worker.config import ImapSettings

DOVECOT = "/usr/sbin/dovecot"
# Dovecot 2.3's default post-login capabilities, minus IDLE: clients then have to poll.
NO_IDLE_CAPABILITY = ("IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY "
                      "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "
                      "URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
                      "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
                      "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW "
                      "STATUS=SIZE SAVEDATE LITERAL+ NOTIFY SPECIAL-USE")


@dataclass(frozen=True)
class Account:
    """One IMAP user of a test Dovecot: where to connect and how to log in."""

    host: str
    port: int
    username: str
    password: str
    tls_port: int | None = None
    cafile: Path | None = None

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        if self.cafile is None:
            raise RuntimeError("this Dovecot was started without ssl=True")
        return client_context(self.cafile)

    def imap_settings(self, **overrides: object) -> ImapSettings:
        """``worker.config.ImapSettings`` for this account (password as a Secret)."""
        from worker.config import ImapSettings, Secret

        values: dict[str, object] = {"host": self.host, "port": self.port,
                                     "username": self.username, "password": Secret(self.password)}
        if overrides.get("tls") == "tls" and "port" not in overrides:
            values["port"] = self.tls_port
        values.update(overrides)
        return ImapSettings(**values)  # type: ignore[arg-type]


class Dovecot(TempDirServer):
    """A Dovecot that writes its own config, state, logs and mail under one temp dir.

    ``idle=False`` hides the IDLE capability so that clients must poll; ``ssl=True`` adds a
    self-signed certificate (STARTTLS on ``port``, implicit TLS on ``tls_port``).
    """

    log_chars = 3000

    def __init__(self, *, idle: bool = True, ssl: bool = False) -> None:
        if not os.path.exists(DOVECOT):
            raise ServerUnavailable("Dovecot not found; apt-get install dovecot-imapd")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.tls_port = free_port() if ssl else None
        self.idle = idle
        self.ssl = ssl
        self.tmp = Path(tempfile.mkdtemp(prefix="nurture-dovecot-"))
        # Dovecot's auth process (an unprivileged user) must read the passwd file below.
        self.tmp.chmod(0o755)
        self.mail_root = self.tmp / "mail"
        # One passwd file per user: Dovecot re-checks a passwd file at most once a second, so
        # a user added to a shared file right after a login could stay unknown for a second.
        self.passwd = self.tmp / "passwd.d"
        self.config = self.tmp / "dovecot.conf"
        self.log = self.tmp / "dovecot.log"
        # Dovecot never gives mail access to UID 0, so as root the mail belongs to nobody.
        self.mail_user = RunAs.first_of("nobody")
        self.internal_user = RunAs.first_of("dovecot", "nobody")
        self.login_user = RunAs.first_of("dovenull", "nobody")
        self.cafile: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()
        self._users: dict[str, str] = {}
        self._setup()

    # -- lifecycle ------------------------------------------------------------------------

    def _setup(self) -> None:
        for sub in ("run", "state", "mail"):
            (self.tmp / sub).mkdir(mode=0o755)
            (self.tmp / sub).chmod(0o755)
        self.mail_user.chown(self.mail_root)
        self.passwd.mkdir(mode=0o755)
        self.passwd.chmod(0o755)
        ssl_lines = "ssl = no\n"
        imaps = "  inet_listener imaps {\n    port = 0\n  }\n"
        if self.ssl:
            cert, key = make_self_signed(self.tmp, "dovecot")
            self.cafile = cert
            ssl_lines = f"ssl = yes\nssl_cert = <{cert}\nssl_key = <{key}\n"
            if os.path.exists("/usr/share/dovecot/dh.pem"):
                ssl_lines += "ssl_dh = </usr/share/dovecot/dh.pem\n"
            imaps = (f"  inet_listener imaps {{\n    address = {self.host}\n"
                     f"    port = {self.tls_port}\n    ssl = yes\n  }}\n")
        capability = "" if self.idle else f"imap_capability = {NO_IDLE_CAPABILITY}\n"
        self.config.write_text(
            f"base_dir = {self.tmp}/run\n"
            f"state_dir = {self.tmp}/state\n"
            f"log_path = {self.log}\n"
            f"info_log_path = {self.log}\n"
            "protocols = imap\n"
            f"listen = {self.host}\n"
            f"default_internal_user = {self.internal_user.name}\n"
            f"default_internal_group = {grp.getgrgid(self.internal_user.gid).gr_name}\n"
            f"default_login_user = {self.login_user.name}\n"
            "disable_plaintext_auth = no\n"
            "auth_mechanisms = plain login\n"
            f"mail_location = maildir:{self.mail_root}/%u\n"
            f"mail_uid = {self.mail_user.uid}\nmail_gid = {self.mail_user.gid}\n"
            "first_valid_uid = 1\nfirst_valid_gid = 1\n"
            "mail_fsync = never\n"
            "mail_max_userip_connections = 100\n"
            # Failed logins are part of the tests: no 2 s delay, no growing per-IP penalty.
            "auth_failure_delay = 0\n"
            f"{capability}{ssl_lines}"
            "passdb {\n  driver = passwd-file\n"
            f"  args = scheme=PLAIN username_format=%u {self.passwd}/%u\n}}\n"
            "userdb {\n  driver = static\n"
            f"  args = uid={self.mail_user.uid} gid={self.mail_user.gid} "
            f"home={self.mail_root}/%u\n}}\n"
            "service imap-login {\n"
            f"  inet_listener imap {{\n    address = {self.host}\n    port = {self.port}\n  }}\n"
            f"{imaps}"
            # chroot needs root; without it the same config also works for a normal user.
            "  chroot =\n}\n"
            "service anvil {\n  chroot =\n"
            "  unix_listener anvil-auth-penalty {\n    mode = 0\n  }\n}\n"
            "service stats {\n  chroot =\n}\n"
        )

    def start(self) -> Self:
        """Start (or restart after ``stop``) on the same port with the same data."""
        with self._lock:
            if self._proc is not None:
                return self
            # Its own process group: the master leaves client processes running when it
            # stops, so stop() signals the whole group to cut every connection.
            self._proc = subprocess.Popen([DOVECOT, "-F", "-c", str(self.config)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          cwd=self.tmp, start_new_session=True)
        try:
            wait_for_port(self.host, self.port, 20.0, "Dovecot", banner=b"* OK")
        except RuntimeError as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n{self.log_tail()}") from None
        return self

    def stop(self) -> None:
        """Stop the server; every client connection is cut. Data stays for ``start``."""
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        # Wait for every process of the group (master, imap, imap-login) to be gone. When a
        # client connects during shutdown, Dovecot can linger for seconds waiting for its
        # (dead) auth process: after a short grace, kill what is left.
        deadline = time.monotonic() + 0.5
        while _group_alive(pgid):
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pgid, signal.SIGKILL)
                deadline = time.monotonic() + 5
            proc.poll()  # reap the master
            time.sleep(0.01)
        proc.wait()

    def restart(self) -> None:
        """Stop and start again on the same port with the same data."""
        self.stop()
        self.start()


    # -- users and mail -------------------------------------------------------------------

    def add_user(self, name: str | None = None, password: str | None = None) -> Account:
        """Create a user, usable at once (changing an existing password may take a second)."""
        name = name or f"u{secrets.token_hex(4)}"
        password = password or secrets.token_urlsafe(12)
        if not re.fullmatch(r"[A-Za-z0-9._@+-]+", name) or ":" in password or "\n" in password:
            raise ValueError("user names are [A-Za-z0-9._@+-]+; passwords have no ':' or newline")
        with self._lock:
            self._users[name] = password
            tmp = self.passwd / f".{name}.new"
            tmp.write_text(f"{name}:{{PLAIN}}{password}::::::\n")
            tmp.chmod(0o644)
            # A rename: Dovecot never reads a half-written file.
            tmp.replace(self.passwd / name)
        return self.account(name)

    def account(self, name: str) -> Account:
        """The ``Account`` of an existing user."""
        return Account(self.host, self.port, name, self._users[name], self.tls_port, self.cafile)

    def client(self, account: Account) -> IMAPClientT:
        """A logged-in imapclient connection (plain text) for ``account``."""
        from imapclient import IMAPClient

        client = IMAPClient(account.host, account.port, ssl=False, timeout=10)
        client.login(account.username, account.password)
        return client

    def append(self, account: Account, folder: str, raw: bytes,
               flags: tuple[bytes, ...] = ()) -> int:
        """Append ``raw`` to ``folder`` over IMAP (creating the folder); return its UID."""
        with self.client(account) as client:
            if folder.upper() != "INBOX" and not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=flags)
        match = re.search(rb"APPENDUID \d+ (\d+)", response)
        if not match:
            raise RuntimeError(f"no APPENDUID in {response!r}")
        return int(match.group(1))

    def uidvalidity(self, account: Account, folder: str = "INBOX") -> int:
        """The folder's current UIDVALIDITY, as a client sees it."""
        with self.client(account) as client:
            return int(client.folder_status(folder, ["UIDVALIDITY"])[b"UIDVALIDITY"])

    def uids(self, account: Account, folder: str = "INBOX") -> list[int]:
        """Every UID in ``folder``."""
        with self.client(account) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(u) for u in client.search("ALL"))

    def folder_dir(self, account: Account, folder: str = "INBOX") -> Path:
        """The Maildir directory behind ``folder``."""
        root = self.mail_root / account.username
        return root if folder.upper() == "INBOX" else root / f".{folder}"

    def reset_uidvalidity(self, account: Account, folder: str = "INBOX") -> tuple[int, int]:
        """Make Dovecot assign a new UIDVALIDITY to ``folder``, keeping its messages.

        Stops the server (cutting every client), deletes the folder's uid list and indexes,
        and starts again. Returns (old, new); raises if the value did not change.
        """
        old = self.uidvalidity(account, folder)
        self.stop()
        directory = self.folder_dir(account, folder)
        root = self.mail_root / account.username
        for path in [*directory.glob("dovecot-uidlist*"), *directory.glob("dovecot.index*"),
                     *root.glob("dovecot.list.index*")]:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.start()
        new = self.uidvalidity(account, folder)
        if new == old:
            raise RuntimeError(f"UIDVALIDITY of {folder} stayed {old} after the reset")
        return old, new


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of group ``pgid`` remains.

    Zombies hold no sockets, and in a container PID 1 may take seconds to reap them.
    """
    proc = Path("/proc")
    if not proc.is_dir():
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return False
        return True
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # after "(comm)": state, ppid, pgrp, ...
        if len(fields) > 2 and fields[2] == str(pgid) and fields[0] != "Z":
            return True
    return False


if TYPE_CHECKING:
    from imapclient import IMAPClient as IMAPClientT
