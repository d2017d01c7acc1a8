"""One IMAP connection of the inbox watcher: log in, select, search, fetch, wait in IDLE.

A session belongs to one thread at a time (imapclient is not thread-safe). Every library
error is translated into ``MailboxError`` here, so the watcher handles one kind of failure.
"""

from __future__ import annotations

import imaplib
import logging
import random
import select
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from worker.adapters import tls
from worker.adapters.oauth2 import TokenSource
from worker.config import ImapSettings
from worker.errors import GrantRevokedError, MailboxError, OAuthError

log = logging.getLogger(__name__)

# What a dead or confused connection raises: imaplib's error/abort (imapclient's errors
# derive from them), socket errors and timeouts, TLS errors (both OSError subclasses).
LIBRARY_ERRORS: tuple[type[BaseException], ...] = (imaplib.IMAP4.error, OSError, EOFError)
_OPEN_ERRORS: tuple[type[BaseException], ...] = (*LIBRARY_ERRORS, KeyError, ValueError)

_SIZE_WINDOW = 200            # UIDs per metadata FETCH
_BODY_BATCH_COUNT = 50        # messages per body FETCH
_BODY_BATCH_BYTES = 8 << 20   # bytes per body FETCH, so huge mail is fetched a few at a time


def backoff_s(attempt: int, *, base_s: float = 0.5, cap_s: float = 30.0,
              rand: Callable[[], float] = random.random) -> float:
    """Delay before reconnect ``attempt`` (1-based): exponential, capped, half of it random.

    The random half spreads many workers that lost the same server at the same moment.
    """
    ceiling = min(cap_s, base_s * 2.0 ** min(max(attempt - 1, 0), 32))
    return ceiling / 2 + rand() * ceiling / 2


@dataclass(frozen=True)
class FetchedMessage:
    """One message as fetched: at most ``max_bytes`` of it, and its full size."""

    uid: int
    data: bytes
    size: int
    received_at: datetime | None


class ImapSession:
    """A logged-in connection with the watched folder selected."""

    def __init__(self, client: IMAPClient, settings: ImapSettings, uidvalidity: int,
                 readonly: bool, uidnext: int = 0) -> None:
        self.client = client
        self.settings = settings
        self.folder = settings.folder
        self.uidvalidity = uidvalidity
        self.readonly = readonly
        self.uidnext = uidnext  # from SELECT; 0 when the server did not say

    @classmethod
    def open(cls, settings: ImapSettings, *, readonly: bool, timeout_s: float,
             ssl_context: ssl.SSLContext | None = None,
             tokens: TokenSource | None = None) -> ImapSession:
        """Connect (tls none|starttls|tls), log in and select the folder.

        ``tokens`` signs in with OAuth 2.0 (``imap.auth = "oauth2"``); a GrantRevokedError
        from it passes through untranslated: the mailbox must stop, not reconnect."""
        where = f"{settings.host}:{settings.port}"
        if ssl_context is None and settings.tls != "none":
            ssl_context = tls.client_context(settings.ca_file, key="imap.ca_file",
                                             server_name=settings.tls_server_name)
        try:
            client = IMAPClient(settings.host, settings.port, ssl=settings.tls == "tls",
                                ssl_context=ssl_context, timeout=timeout_s)
        except LIBRARY_ERRORS as exc:
            raise MailboxError(f"cannot connect to {where}: {_describe(exc)}") from exc
        try:
            # tz-aware INTERNALDATE instead of naive local time
            client.normalise_times = False
            if settings.tls == "starttls":
                client.starttls(ssl_context)
            if settings.auth == "oauth2":
                oauth_login(client, settings.username, tokens)
            elif settings.username:
                # imapclient logs LOGIN as "**REDACTED**"; the error text is the server's.
                client.login(settings.username, settings.password.reveal())
            if not readonly and settings.move_to and not client.folder_exists(settings.move_to):
                client.create_folder(settings.move_to)
            info = client.select_folder(settings.folder, readonly=readonly)
            uidvalidity = int(info[b"UIDVALIDITY"])
            uidnext = int(info.get(b"UIDNEXT", 0))
        except OAuthError:
            _shutdown(client)
            raise
        except _OPEN_ERRORS as exc:
            _shutdown(client)
            raise MailboxError(f"{where} folder {settings.folder!r}: {_describe(exc)}") from exc
        return cls(client, settings, uidvalidity, readonly, uidnext)

    def last_uid_at_open(self) -> int:
        """The highest UID the folder had when it was selected (from UIDNEXT; a search for
        the highest UID where the server did not announce UIDNEXT)."""
        if self.uidnext > 0:
            return self.uidnext - 1
        found = self._call(self.client.search, ["ALL"])
        return max((int(uid) for uid in found), default=0)

    @property
    def can_idle(self) -> bool:
        """Whether the server announced IDLE after login."""
        return b"IDLE" in self._call(self.client.capabilities)

    def set_timeout(self, timeout_s: float) -> None:
        """Bound every later blocking read or write on this connection."""
        self.client.socket().settimeout(max(timeout_s, 0.01))

    def noop(self) -> None:
        """Make the server report changes (and prove the connection is alive)."""
        self._call(self.client.noop)

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs greater than ``last_uid``, ascending, including mail that arrived just now."""
        # Servers may keep a session's view of the folder until a NOOP syncs it; Dovecot's
        # UID SEARCH does not see a message appended a moment ago without one.
        self._call(self.client.noop)
        self.announced_new_mail()  # what the NOOP announced is in the view SEARCH sees
        found = self._call(self.client.search, ["UID", f"{last_uid + 1}:*"])
        # "n:*" always matches the highest UID, even when it is below n.
        return sorted(int(uid) for uid in found if int(uid) > last_uid)

    def announced_new_mail(self) -> bool:
        """Whether the server announced new messages (EXISTS) since the last call.

        Servers announce new mail in the answer to any command; imaplib files such
        announcements away. One that came with a SEARCH, FETCH or STORE is in the session's
        view already, so entering IDLE would not report it again: sync once more instead.
        """
        untagged = getattr(getattr(self.client, "_imap", None), "untagged_responses", None)
        if not isinstance(untagged, dict):
            return False
        announced = untagged.pop("EXISTS", None)
        untagged.pop("RECENT", None)
        return bool(announced)

    def fetch(self, uids: Sequence[int], max_bytes: int) -> Iterator[FetchedMessage]:
        """The messages ``uids`` in UID order, each cut after ``max_bytes``; \\Seen untouched.

        A message expunged meanwhile is simply not yielded.
        """
        for start in range(0, len(uids), _SIZE_WINDOW):
            window = list(uids[start:start + _SIZE_WINDOW])
            meta = self._call(self.client.fetch, window, ["RFC822.SIZE", "INTERNALDATE"])
            present = [uid for uid in window if uid in meta]
            for group in _batches(present, meta, max_bytes):
                bodies = self._call(self.client.fetch, group, [f"BODY.PEEK[]<0.{max_bytes}>"])
                for uid in group:
                    if uid not in bodies:
                        continue
                    data = _body(bodies[uid])
                    if data is None:
                        raise MailboxError(f"UID {uid}: the server returned no body")
                    received = meta[uid].get(b"INTERNALDATE")
                    yield FetchedMessage(
                        uid=uid, data=data[:max_bytes],
                        size=int(meta[uid].get(b"RFC822.SIZE", len(data))),
                        received_at=received.astimezone(UTC)
                        if isinstance(received, datetime) and received.tzinfo else None)

    def finish(self, uids: Sequence[int]) -> None:
        """Apply the optional after-handling actions: add ``flag``, then ``move_to``.

        Without MOVE the fallback is COPY, \\Deleted and UID EXPUNGE of exactly those UIDs;
        a plain EXPUNGE would also remove mail that other clients marked deleted.
        """
        flag, move_to = self.settings.flag, self.settings.move_to
        if not uids or (not flag and not move_to):
            return
        if flag:
            self._call(self.client.add_flags, list(uids), [flag], True)
        if move_to:
            if b"MOVE" in self._call(self.client.capabilities):
                self._call(self.client.move, list(uids), move_to)
            else:
                self._call(self.client.copy, list(uids), move_to)
                self._call(self.client.add_flags, list(uids), [b"\\Deleted"], True)
                if b"UIDPLUS" in self._call(self.client.capabilities):
                    self._call(self.client.uid_expunge, list(uids))

    def idle_wait(self, wake_fd: int, max_s: float, check_s: float,
                  should_leave: Callable[[], bool]) -> None:
        """Sit in IDLE until the server says anything, ``wake_fd`` becomes readable,
        ``should_leave()`` is true (asked every ``check_s``) or ``max_s`` passed.

        Any server output ends the wait: the caller then syncs, which is cheap and never
        misses mail, instead of interpreting each untagged response.
        """
        self._call(self.client.idle)
        until = time.monotonic() + max_s
        sock = self.client.socket()
        poller = select.poll()
        poller.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        poller.register(wake_fd, select.POLLIN)
        try:
            # The line "+ idling" may have arrived together with a response that now sits
            # in imaplib's read buffer, where poll() cannot see it.
            if self._buffered():
                return
            while not should_leave():
                left = until - time.monotonic()
                if left <= 0:
                    return
                events = poller.poll(min(check_s, left) * 1000)
                if any(fd == sock.fileno() for fd, _ in events):
                    return
        finally:
            # Raises (as MailboxError) if the server went away during IDLE.
            _done, responses = self._call(self.client.idle_done)
            if any(isinstance(r, tuple) and len(r) > 0 and r[0] == b"BYE" for r in responses):
                raise MailboxError("the server said BYE")

    def close(self) -> None:
        """Log out, or just drop the connection if that fails."""
        try:
            self.client.logout()
        except Exception:  # noqa: BLE001 - the connection is often already dead here
            _shutdown(self.client)

    def _buffered(self) -> bool:
        reader = getattr(getattr(self.client, "_imap", None), "file", None)
        peek = getattr(reader, "peek", None)
        if peek is None:
            return False
        sock = self.client.socket()
        timeout = sock.gettimeout()
        sock.setblocking(False)
        try:
            return bool(peek(1))
        except (OSError, ValueError):
            return False
        finally:
            sock.settimeout(timeout)

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except LIBRARY_ERRORS as exc:
            raise MailboxError(f"{self.settings.host}:{self.settings.port} "
                               f"{getattr(method, '__name__', 'command')}: {_describe(exc)}"
                               ) from exc


def _batches(uids: list[int], meta: dict[int, Any], max_bytes: int) -> Iterator[list[int]]:
    group: list[int] = []
    total = 0
    for uid in uids:
        size = min(int(meta[uid].get(b"RFC822.SIZE", max_bytes)), max_bytes)
        if group and (len(group) >= _BODY_BATCH_COUNT or total + size > _BODY_BATCH_BYTES):
            yield group
            group, total = [], 0
        group.append(uid)
        total += size
    if group:
        yield group


def _body(item: dict[bytes, Any]) -> bytes | None:
    for key, value in item.items():
        if isinstance(key, bytes) and key.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return None


def oauth_login(client: IMAPClient, user: str, tokens: TokenSource | None) -> None:
    """AUTHENTICATE XOAUTH2 (OAUTHBEARER where only that is offered); a refused token is
    refreshed once and tried again. imapclient builds the SASL strings; the error text is
    the server's."""
    if tokens is None:
        raise GrantRevokedError("login_required", "auth = oauth2 but no sign-in stored; run "
                                "`nurture mailbox login`")
    offered = client.capabilities()
    bearer_only = b"AUTH=OAUTHBEARER" in offered and b"AUTH=XOAUTH2" not in offered

    def attempt(token: str) -> None:
        if bearer_only:
            client.oauthbearer_login(user, token)
        else:
            client.oauth2_login(user, token)

    try:
        attempt(tokens.access_token())
    except LoginError as exc:
        log.info("action=imap_token_refused error=%r", str(exc)[:200])
        attempt(tokens.force_refresh())


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _shutdown(client: IMAPClient) -> None:
    try:
        client.shutdown()
    except Exception:  # best effort on a broken connection
        log.debug("action=imap_shutdown_failed", exc_info=True)
