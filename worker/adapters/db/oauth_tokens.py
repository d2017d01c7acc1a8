"""Mailbox sign-ins and pauses, composed over a store's session factory (not mixed into
``Database``): sealed refresh tokens, the account they belong to, a provider's refusal, and
the bounce guard's pause. The refresh token is sealed (``SecretBox``) before it reaches
SQLAlchemy and opened only here; nothing of it is ever in a log line or a ``repr``."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from worker.adapters.db import models as m
from worker.adapters.secret_box import SecretBox, refresh_token_context


@dataclass(frozen=True)
class SignIn:
    """What may be shown about a mailbox's sign-in (no token)."""

    mailbox: str
    account: str
    has_refresh_token: bool
    updated_at: datetime
    revoked_at: datetime | None
    revoked_error: str | None


class OAuthTokens:
    """Sealed refresh tokens per mailbox, and mailbox pauses.

    Args:
        session: opens one session (a transaction), e.g. ``Database.session``.
        box: seals and opens the tokens (keys from NURTURE_SECRET_KEY); None when the key is
            not set: then storing or reading a token raises ConfigError from ``SecretBox``.
        now: the clock.
    """

    def __init__(self, session: Callable[[], AbstractContextManager[Session]],
                 box: Callable[[], SecretBox], now: Callable[[], datetime]) -> None:
        self.session = session
        self._box = box
        self._now = now

    def store(self, mailbox: str, account: str, refresh_token: str | None) -> None:
        """Save a sign-in (a new login or a rotated token); clears a refusal."""
        sealed = (self._box().seal(refresh_token, refresh_token_context(mailbox))
                  if refresh_token else None)
        with self.session() as session:
            row = session.get(m.OAuthToken, mailbox)
            if row is None:
                row = m.OAuthToken(mailbox=mailbox, account=account, updated_at=self._now())
                session.add(row)
            if account:
                row.account = account
            if sealed is not None:
                row.refresh_sealed = sealed
            row.updated_at = self._now()
            row.revoked_at = None
            row.revoked_error = None

    def refresh_token(self, mailbox: str) -> str | None:
        """The mailbox's refresh token in clear (None without a usable sign-in)."""
        with self.session() as session:
            row = session.get(m.OAuthToken, mailbox)
            sealed = row.refresh_sealed if row is not None and row.revoked_at is None else None
        if sealed is None:
            return None
        return self._box().open(sealed, refresh_token_context(mailbox))

    def mark_revoked(self, mailbox: str, error: str) -> bool:
        """Record that the provider refused the grant; True the first time (alert once)."""
        with self.session() as session:
            row = session.get(m.OAuthToken, mailbox)
            if row is None:
                row = m.OAuthToken(mailbox=mailbox, account="", updated_at=self._now())
                session.add(row)
            if row.revoked_at is not None:
                return False
            row.revoked_at = self._now()
            row.revoked_error = error[:500]
            return True

    def sign_ins(self) -> dict[str, SignIn]:
        """Every stored sign-in by mailbox, without the tokens."""
        with self.session() as session:
            rows = session.scalars(select(m.OAuthToken)).all()
            return {r.mailbox: SignIn(r.mailbox, r.account, r.refresh_sealed is not None,
                                      r.updated_at, r.revoked_at, r.revoked_error)
                    for r in rows}

    # -- the bounce guard's pauses ----------------------------------------------------------

    def pause(self, mailbox: str, reason: str) -> bool:
        """Stop ``mailbox`` from sending; True if it was not paused already."""
        with self.session() as session:
            if session.get(m.MailboxPause, mailbox) is not None:
                return False
            session.add(m.MailboxPause(mailbox=mailbox, reason=reason, paused_at=self._now()))
            return True

    def resume(self, mailbox: str) -> bool:
        """Let ``mailbox`` send again; True if it was paused."""
        with self.session() as session:
            result = session.execute(delete(m.MailboxPause).where(m.MailboxPause.mailbox == mailbox))
            return bool(getattr(result, "rowcount", 0))

    def pauses(self) -> dict[str, str]:
        """Paused mailboxes and why."""
        with self.session() as session:
            return {r.mailbox: r.reason for r in session.scalars(select(m.MailboxPause))}

    def stopped(self) -> dict[str, str]:
        """Mailboxes that must not send, and why: "paused: ..." (bounce guard) or
        "signed out: ..." (the provider refused the grant)."""
        states = {name: f"paused: {reason}" for name, reason in self.pauses().items()}
        for name, row in self.sign_ins().items():
            if row.revoked_at is not None:
                states[name] = (f"signed out: {row.revoked_error} (run `nurture mailbox "
                                f"login {name}`)")
        return states

    # -- what `mailbox list` shows -------------------------------------------------------------

    def last_sends(self) -> dict[str, datetime]:
        """When each mailbox last had a mail accepted by its server."""
        with self.session() as session:
            rows = session.execute(select(m.Touch.mailbox, func.max(m.Touch.accepted_at))
                                   .where(m.Touch.accepted_at.is_not(None))
                                   .group_by(m.Touch.mailbox)).all()
        return {str(name): at for name, at in rows if name is not None and at is not None}
