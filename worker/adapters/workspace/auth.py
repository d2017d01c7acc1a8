"""Sign-in by mailed link, sessions, and who may see what.

A token (in the link, in the cookie) is random; only its SHA-256 is stored, so reading the
database does not sign anybody in. The login page answers the same whether or not the
address is on the team, and requests are limited per address and per client."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass
from datetime import timedelta

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from worker.adapters.workspace.ports import WorkspacePorts
from worker.logs import mask

log = logging.getLogger(__name__)

LINK_MINUTES = 15
SESSION_COOKIE = "nurture_session"
PRE_COOKIE = "nurture_pre"


def digest(token: str) -> str:
    """What is stored of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Person:
    """The signed-in team member."""

    email: str
    manager: bool
    session_key: str

    @property
    def sees(self) -> str | None:
        """The owner whose leads this person sees; None: everyone's."""
        return None if self.manager else self.email


@dataclass(frozen=True)
class _NoteMail:
    """A mail to a team member (the shape ``Notify.send`` takes)."""

    id: int
    to_addr: str
    subject: str
    body: str
    mailbox: str = "default"
    reply_name: str | None = None
    reply_addr: str | None = None
    in_reply_to: str | None = None
    thread_refs: str | None = None


class RateLimit:
    """At most ``limit`` events per key within ``window_s`` (in memory, per worker)."""

    def __init__(self, limit: int, window_s: float) -> None:
        self.limit, self.window_s = limit, window_s
        self.seen: dict[str, deque[float]] = {}

    def allow(self, key: str) -> bool:
        """Count one event for ``key``; False once over the limit."""
        now = time.monotonic()
        times = self.seen.setdefault(key, deque())
        while times and times[0] < now - self.window_s:
            times.popleft()
        if len(self.seen) > 10_000:  # a flood of distinct keys must not grow memory for ever
            self.seen = {key: times}
        if len(times) >= self.limit:
            return False
        times.append(now)
        return True


class Auth:
    """Team membership, sign-in links and sessions."""

    def __init__(self, ports: WorkspacePorts) -> None:
        self.ports = ports
        team = ports.settings.team
        self.managers = {a.strip().lower() for a in team.managers}
        self.reps = {a.strip().lower() for a in team.reps}
        self.per_address = RateLimit(5, LINK_MINUTES * 60)
        self.per_client = RateLimit(20, LINK_MINUTES * 60)
        self._sending: set[asyncio.Task[None]] = set()

    def is_member(self, email: str) -> bool:
        """Managers, reps, and every lead owner."""
        return email in self.managers or email in self.reps or self.ports.store.owns_leads(email)

    async def request_link(self, email: str, client: str) -> None:
        """Mail a one-time sign-in link if the address is on the team (quietly otherwise)."""
        email = email.strip().lower()
        if not email or "@" not in email:
            return
        if not self.per_client.allow(client) or not self.per_address.allow(email):
            log.info("action=workspace_link_limited lead=%s", mask(email))
            return
        if not await run_in_threadpool(self.is_member, email):
            return
        token = secrets.token_urlsafe(32)
        now = self.ports.clock.now()
        await run_in_threadpool(self.ports.store.add_login_token, digest(token), email, now,
                                now + timedelta(minutes=LINK_MINUTES))
        url = f"{self.ports.settings.http.base_url()}/app/login/{token}"
        body = (f"Open this link to sign in to the Nurture workspace:\n\n{url}\n\n"
                f"It works once, within {LINK_MINUTES} minutes. If you did not ask for it, "
                "ignore this mail.\n")
        # sent in the background: the answer must not take longer for a member
        task = asyncio.create_task(self._send(_NoteMail(0, email, "Your sign-in link", body)))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, mail: _NoteMail) -> None:
        error = await self.ports.send_mail(mail)
        if error:
            log.warning("action=workspace_link_failed to=%s error=%r", mask(mail.to_addr), error)

    def sign_in(self, token: str) -> str | None:
        """A new session's token for a valid link; None for a used, expired or unknown one."""
        now = self.ports.clock.now()
        email = self.ports.store.use_login_token(digest(token), now)
        if email is None or not self.is_member(email):
            return None
        session = secrets.token_urlsafe(32)
        days = self.ports.settings.app.session_days
        self.ports.store.add_session(digest(session), email, now, now + timedelta(days=days))
        log.info("action=workspace_signed_in who=%s", mask(email))
        return session

    def person(self, request: Request) -> Person | None:
        """The signed-in person of a request, if any."""
        key = request.cookies.get(SESSION_COOKIE)
        if not key:
            return None
        email = self.ports.store.session_email(digest(key), self.ports.clock.now())
        if email is None:
            return None
        return Person(email, email in self.managers, key)

    def sign_out(self, person: Person) -> None:
        self.ports.store.end_session(digest(person.session_key))
