"""A mailbox's recent sends for the bounce guard, composed over a store's session factory:
newest first, whether each hard bounced, and where its address came from (the lead's import
file, else the campaign)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager

from sqlalchemy import select
from sqlalchemy.orm import Session

from worker.adapters.db import models as m
from worker.domain.bounce_guard import SendOutcome


class MailboxHistory:
    """Reads of the sending ledger per mailbox."""

    def __init__(self, session: Callable[[], AbstractContextManager[Session]]) -> None:
        self.session = session

    def recent_outcomes(self, mailbox: str, window: int) -> list[SendOutcome]:
        """The last ``window`` answered sends of ``mailbox``, newest first."""
        T, L = m.Touch, m.Lead
        with self.session() as session:
            rows = session.execute(
                select(T.state, T.campaign, L.source).join(L, L.id == T.lead_id)
                .where(T.mailbox == mailbox, T.kind == "email",
                       T.state.in_(("accepted", "bounced")))
                .order_by(T.id.desc()).limit(window)).all()
        return [SendOutcome(state == "bounced", source or f"campaign {campaign}")
                for state, campaign, source in rows]
