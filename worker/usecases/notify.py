"""Use-case: mail to people on our side (a reply forwarded to its owner, a contact request,
a policy refusal, the daily task digest). Other use-cases queue notifications in the store;
this one sends the queue's mails and writes the digest."""

from __future__ import annotations

import secrets
import socket
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Protocol

from worker.config import Settings
from worker.domain import mime
from worker.mailer import DEFAULT_MAILBOX
from worker.ports import Clock, Envelope, Sender, TaskRow
from worker.ports_store import DigestStore, OpenTasks


class NoteRow(Protocol):
    """One queued notification (the columns a mail is built from)."""

    @property
    def id(self) -> int: ...
    @property
    def mailbox(self) -> str: ...
    @property
    def to_addr(self) -> str: ...
    @property
    def subject(self) -> str: ...
    @property
    def body(self) -> str: ...
    @property
    def reply_name(self) -> str | None: ...
    @property
    def reply_addr(self) -> str | None: ...
    @property
    def in_reply_to(self) -> str | None: ...
    @property
    def thread_refs(self) -> str | None: ...


class Notify:
    """Send queued notifications; write each owner's task digest once a day.

    Args:
        store: the notification queue and the digest's lease (``DigestStore``).
        tasks: the open tasks the digest lists, from the reporting room (``OpenTasks``).
        sender: returns the current sender (a worker run opens a fresh one).
        settings: the sending addresses (``smtp``, ``mailboxes``) and ``[notify]``.
        clock: the Date header and the digest's hour.
        worker_id: holds the day's digest lease, so one worker of several writes it.
    """

    def __init__(self, store: DigestStore, tasks: OpenTasks, sender: Callable[[], Sender],
                 settings: Settings, clock: Clock, worker_id: str) -> None:
        self.store = store
        self.tasks = tasks
        self.sender = sender
        self.settings = settings
        self.clock = clock
        self.worker_id = worker_id
        self._digest_day: str | None = None

    async def send(self, note: NoteRow) -> str | None:
        """Send one notification mail; returns an error text or None."""
        addr = self.settings.smtp.address or f"nurture@{socket.gethostname()}"
        if note.mailbox in self.settings.mailboxes:
            addr = self.settings.mailboxes[note.mailbox].address
        name, from_addr = mime.split_address(addr)
        mid = f"nurture.note.{note.id}.{secrets.token_hex(4)}@{from_addr.rpartition('@')[2]}"
        headers = [("From", mime.address(name or "Nurture", from_addr)),
                   ("To", mime.address(None, note.to_addr)),
                   ("Subject", mime.encode_text(note.subject)),
                   ("Date", mime.date_header(self.clock.now())), ("Message-ID", f"<{mid}>"),
                   ("Auto-Submitted", "auto-generated")]
        if note.reply_addr:  # a forwarded reply: answering it reaches the lead, in thread
            headers.append(("Reply-To", mime.address(note.reply_name, note.reply_addr)))
        if note.in_reply_to:
            headers.append(("In-Reply-To", f"<{note.in_reply_to}>"))
        if note.thread_refs:
            headers.append(("References", note.thread_refs))
        data = mime.build_message(headers, note.body, None)
        try:
            channel = await self.sender().open_channel(
                note.mailbox if note.mailbox in self.settings.mailboxes else DEFAULT_MAILBOX)
            try:
                await channel.send(Envelope(from_addr, note.to_addr, mid, data, note.mailbox))
            finally:
                await channel.close()
        except Exception as exc:  # noqa: BLE001 - recorded on the row, retried next time
            return str(exc)
        return None

    def digest_if_due(self) -> None:
        """Once a day at ``notify.digest_hour`` (UTC), each owner gets their open tasks."""
        if not self.settings.notify.task_digest:
            return
        now = self.clock.now().astimezone(UTC)
        day = now.date().isoformat()
        if now.hour < self.settings.notify.digest_hour or self._digest_day == day:
            return
        self._digest_day = day
        if not self.store.acquire_lease(f"digest:{day}", self.worker_id, 86400 * 2):
            return
        for owner, subject, body in task_digests(self.tasks.open_tasks()):
            self.store.add_notification("task_digest", owner, subject, body)


def task_digests(open_tasks: Sequence[tuple[TaskRow, str, str | None]]
                 ) -> Iterator[tuple[str, str, str]]:
    """(owner, subject, body) for each owner with open tasks; owners in the order of their
    soonest task, each owner's tasks soonest first."""
    by_owner: dict[str, list[tuple[TaskRow, str]]] = defaultdict(list)
    owned = [(t, email) for t, email, _ in open_tasks if t.owner is not None]
    owned.sort(key=lambda item: _sort_key(item[0].due_at))
    for touch, email in owned:
        by_owner[touch.owner or ""].append((touch, email))
    for owner, tasks in by_owner.items():
        lines = [f"- #{t.id} {t.task_kind or 'task'} for {email} ({t.campaign}): {t.task_text}"
                 for t, email in tasks]
        yield (owner, f"Your open follow-up tasks ({len(tasks)})",
               "Open tasks:\n\n" + "\n".join(lines) + "\n\nMark one done with "
               "`nurture tasks done ID`.\n\n-- Nurture")


def _sort_key(at: datetime | None) -> tuple[bool, datetime]:
    """Soonest first, tasks without a date last (as the database sorts NULLs ascending)."""
    return (at is None, at if at is not None else datetime.min.replace(tzinfo=UTC))
