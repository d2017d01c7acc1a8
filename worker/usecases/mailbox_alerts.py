"""Use-case: a mailbox stops (its OAuth 2.0 grant was refused, or the bounce guard paused it):
record it once, tell the operator's log and the default owner. Mail waits (the sending loop
defers it); nothing here drops anything."""

from __future__ import annotations

import logging
from typing import Protocol

from worker.ports_store import NotificationStore

log = logging.getLogger(__name__)


class MailboxStateStore(Protocol):
    """Where a mailbox's refusal and pause are kept."""

    def mark_revoked(self, mailbox: str, error: str) -> bool: ...
    def pause(self, mailbox: str, reason: str) -> bool: ...


class MailboxAlerts:
    """Records a stopped mailbox and alerts once per stop."""

    def __init__(self, state: MailboxStateStore, notes: NotificationStore,
                 default_owner: str) -> None:
        self._state = state
        self._notes = notes
        self._owner = default_owner

    def grant_refused(self, mailbox: str, error: str) -> bool:
        """The provider refused the refresh token: sending and watching stop until
        `nurture mailbox login`. True if this is news (alerted now)."""
        if not self._state.mark_revoked(mailbox, error):
            return False
        hint = f"nurture mailbox login {mailbox}"
        log.error("action=mailbox_signin_refused mailbox=%s error=%s hint=%r", mailbox, error,
                  f"run `{hint}`")
        self._tell(f"Nurture: mailbox {mailbox} is signed out",
                   f"The mail provider refused mailbox {mailbox}'s sign-in ({error}): consent "
                   f"was revoked or the password changed.\n\nMail from this mailbox waits; "
                   f"nothing is dropped. Replies are not read until you sign in again:\n\n"
                   f"    {hint}\n")
        return True

    def paused(self, mailbox: str, reason: str, details: str) -> bool:
        """The bounce guard stopped ``mailbox``; True if it was not paused already."""
        if not self._state.pause(mailbox, reason):
            return False
        log.error("action=mailbox_paused mailbox=%s reason=%r %s", mailbox, reason, details)
        self._tell(f"Nurture: mailbox {mailbox} paused ({reason})",
                   f"Mailbox {mailbox} stopped sending new mail: {reason}.\n{details}\n\n"
                   f"Its due mail waits; nothing is dropped. Clean the list, then:\n\n"
                   f"    nurture mailbox resume {mailbox}\n")
        return True

    def _tell(self, subject: str, body: str) -> None:
        if self._owner:
            self._notes.add_notification("mailbox_alert", self._owner, subject, body)
