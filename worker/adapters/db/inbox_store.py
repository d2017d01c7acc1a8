"""Inbound state: recorded messages, mailbox checkpoints, leases and worker heartbeats."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from worker.adapters.db import models as m
from worker.adapters.db.base import Room
from worker.adapters.db.webhook_store import leads_in
from worker.domain import webhooks as wh
from worker.ports import Checkpoint, ReplyThread


@dataclass(frozen=True)
class SentMatch:
    """One of our sent mails a reply or report refers to."""
    touch_id: int
    lead_id: int
    enrollment_id: int
    campaign: str
    step_id: str
    message_id: str
    touch_number: int | None


class InboxRows(Room):
    """Inbound mail, mailbox checkpoints and watches, leases, workers, notifications."""
    _inbound_mutex = threading.RLock()

    # --- recorded messages ---------------------------------------------------------------------

    @contextmanager
    def inbound_lock(self, mailbox: str, fingerprint: str) -> Iterator[None]:
        """Only one handler at a time per message: a lock in this process, and on PostgreSQL
        an advisory lock held on its own connection, for other workers."""
        with self._inbound_mutex:
            if self.is_sqlite:
                yield
                return
            key = int.from_bytes(hashlib.sha256(f"{mailbox}\0{fingerprint}".encode())
                                 .digest()[:8], "big", signed=True)
            with self.engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
                conn.commit()
                try:
                    yield
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                    conn.commit()

    def inbound_seen(self, mailbox: str, fingerprint: str) -> bool:
        """Whether a message was already handled (its id is recorded)."""
        with self.session() as s:
            return s.scalar(select(m.Inbound.id).where(
                m.Inbound.mailbox == mailbox, m.Inbound.fingerprint == fingerprint)) is not None

    def record_inbound(self, values: dict[str, Any], text: str | None = None) -> int | None:
        """Store one processed message; None if it had been stored already. With ``text``
        (the new text of a message acted on), its webhook event is written with it."""
        now = self.now()
        try:
            with self.session() as s:
                row_id = int(s.scalar(insert(m.Inbound).values(**values, created_at=now)
                                      .returning(m.Inbound.id)) or 0)
                if text is not None and values.get("lead_id") is not None:
                    self.emit(s, lambda: _inbound_events(s, values, text, now))
                return row_id
        except IntegrityError:
            return None

    def sent_by_message_ids(self, message_ids: Sequence[str]) -> SentMatch | None:
        """The newest of our mails among ``message_ids`` (In-Reply-To first, then References)."""
        ids = [i.strip("<> ") for i in message_ids if i and i.strip("<> ")]
        if not ids:
            return None
        with self.session() as s:
            rows = {r.message_id: r for r in s.execute(
                select(m.Touch.id, m.Touch.lead_id, m.Touch.enrollment_id, m.Touch.campaign,
                       m.Touch.step_id, m.Touch.message_id, m.Touch.touch_number)
                .where(m.Touch.message_id.in_(ids)))}
        for message_id in ids:
            r = rows.get(message_id)
            if r is not None:
                return SentMatch(r.id, r.lead_id, r.enrollment_id, r.campaign, r.step_id,
                                 r.message_id, r.touch_number)
        return None

    def lead_id_by_emails(self, addresses: Sequence[str]) -> int | None:
        """The lead of the first of ``addresses`` that is a lead's, in one query."""
        wanted = [a.lower() for a in addresses if a]
        if not wanted:
            return None
        with self.session() as s:
            found = {row.email: int(row.id) for row in s.execute(
                select(m.Lead.email, m.Lead.id).where(m.Lead.email.in_(wanted)))}
        return next((found[a] for a in wanted if a in found), None)

    def last_email_to(self, lead_id: int) -> SentMatch | None:
        """The lead's most recent mail from us (a reply that threads onto nothing answers it)."""
        with self.session() as s:
            r = s.execute(select(m.Touch.id, m.Touch.lead_id, m.Touch.enrollment_id,
                                 m.Touch.campaign, m.Touch.step_id, m.Touch.message_id,
                                 m.Touch.touch_number)
                          .where(m.Touch.lead_id == lead_id, m.Touch.kind == "email",
                                 m.Touch.state.in_(("accepted", "handed_over")))
                          .order_by(m.Touch.accepted_at.desc().nulls_last(), m.Touch.id.desc())
                          .limit(1)).first()
        if r is None:
            return None
        return SentMatch(r.id, r.lead_id, r.enrollment_id, r.campaign, r.step_id, r.message_id,
                         r.touch_number)

    def add_soft_bounce(self, lead_id: int, window_days: int) -> int:
        """Count a soft bounce; returns how many fell within the window."""
        now = self.now()
        with self.session() as s:
            s.add(m.SoftBounce(lead_id=lead_id, at=now))
            s.flush()
            return int(s.scalar(select(func.count()).where(
                m.SoftBounce.lead_id == lead_id,
                m.SoftBounce.at >= now - timedelta(days=window_days))) or 0)

    # --- checkpoints (the CheckpointStore port) --------------------------------------------------

    def load_checkpoint(self, mailbox: str, folder: str) -> Checkpoint | None:
        """The mailbox's last processed position, or None."""
        with self.session() as s:
            row = s.get(m.MailboxState, (mailbox, folder))
            return Checkpoint(row.uidvalidity, row.last_uid) if row else None

    def save_checkpoint(self, mailbox: str, folder: str, checkpoint: Checkpoint,
                        success_at: datetime) -> None:
        """Remember the mailbox's processed position."""
        dialect = sqlite if self.is_sqlite else postgresql
        values = {"mailbox": mailbox, "folder": folder, "uidvalidity": checkpoint.uidvalidity,
                  "last_uid": checkpoint.last_uid, "last_success_at": success_at}
        stmt = dialect.insert(m.MailboxState).values(**values)
        stmt = stmt.on_conflict_do_update(index_elements=["mailbox", "folder"], set_={
            "uidvalidity": stmt.excluded.uidvalidity, "last_uid": stmt.excluded.last_uid,
            "last_success_at": stmt.excluded.last_success_at})
        with self.session() as s:
            s.execute(stmt)

    def mailbox_states(self) -> list[m.MailboxState]:
        """Each watched mailbox's stored state (for health)."""
        with self.session() as s:
            return list(s.scalars(select(m.MailboxState).order_by(m.MailboxState.mailbox)))

    def acquire_watch(self, mailbox: str, worker_id: str, lease_s: float) -> bool:
        """Take the watch of a mailbox for this worker (one watcher at a time)."""
        return self.acquire_lease(f"watch:{mailbox}", worker_id, lease_s)

    def release_watch(self, mailbox: str, worker_id: str) -> None:
        """Give up the watch of a mailbox."""
        self.release_lease(f"watch:{mailbox}", worker_id)

    # --- leases ----------------------------------------------------------------------------------

    def acquire_lease(self, name: str, holder: str, lease_s: float) -> bool:
        """Take or renew a named lease; False while someone else holds an unexpired one."""
        now = self.now()
        dialect = sqlite if self.is_sqlite else postgresql
        stmt = dialect.insert(m.Lease).values(name=name, holder=holder,
                                             until=now + timedelta(seconds=lease_s))
        stmt = stmt.on_conflict_do_update(
            index_elements=["name"],
            set_={"holder": stmt.excluded.holder, "until": stmt.excluded.until},
            where=(m.Lease.holder == holder) | (m.Lease.until < now)).returning(m.Lease.holder)
        with self.session() as s:
            return bool(s.scalar(stmt) == holder)

    def release_lease(self, name: str, holder: str) -> None:
        """Give up a named lease held by this worker."""
        with self.session() as s:
            s.execute(delete(m.Lease).where(m.Lease.name == name, m.Lease.holder == holder))

    # --- workers ---------------------------------------------------------------------------------

    def register_worker(self, worker_id: str, host: str, pid: int) -> None:
        """Record this worker as alive."""
        now = self.now()
        with self.session() as s:
            row = s.get(m.WorkerRow, worker_id)
            if row is None:
                s.add(m.WorkerRow(id=worker_id, host=host, pid=pid, started_at=now,
                                  heartbeat_at=now))
            else:
                row.started_at, row.heartbeat_at, row.stopped_at = now, now, None

    def heartbeat(self, worker_id: str) -> None:
        """Say this worker is still alive."""
        with self.session() as s:
            s.execute(update(m.WorkerRow).where(m.WorkerRow.id == worker_id)
                      .values(heartbeat_at=self.now()))

    def worker_stopped(self, worker_id: str) -> None:
        """Mark this worker stopped."""
        with self.session() as s:
            s.execute(update(m.WorkerRow).where(m.WorkerRow.id == worker_id)
                      .values(stopped_at=self.now()))

    def workers_alive(self, within_s: float) -> list[m.WorkerRow]:
        """The workers that beat recently."""
        since = self.now() - timedelta(seconds=within_s)
        with self.session() as s:
            return list(s.scalars(select(m.WorkerRow).where(
                m.WorkerRow.heartbeat_at >= since, m.WorkerRow.stopped_at.is_(None))))

    # --- notifications -----------------------------------------------------------------------------

    def add_notification(self, kind: str, to_addr: str, subject: str, body: str,
                         mailbox: str = "default", reply: ReplyThread | None = None) -> int:
        """Queue a mail to a person on our side; ``reply`` makes answering it reach the lead."""
        with self.session() as s:
            row = m.Notification(kind=kind, to_addr=to_addr, subject=subject, body=body,
                                 mailbox=mailbox, created_at=self.now(), attempts=0)
            if reply is not None:
                row.reply_name, row.reply_addr = reply.name, reply.address
                row.in_reply_to, row.thread_refs = reply.in_reply_to, reply.references
            s.add(row)
            s.flush()
            return row.id

    def unsent_notifications(self, limit: int = 50) -> list[m.Notification]:
        """Notifications waiting to be sent."""
        with self.session() as s:
            return list(s.scalars(select(m.Notification).where(m.Notification.sent_at.is_(None))
                                  .order_by(m.Notification.id).limit(limit)))

    def mark_notification(self, notification_id: int, error: str | None) -> None:
        """Record a notification sent, or its error."""
        with self.session() as s:
            row = s.get(m.Notification, notification_id)
            if row is None:
                return
            if error is None:
                row.sent_at = self.now()
            else:
                row.attempts += 1
                row.error = error[:1000]


def _inbound_events(s: Any, v: dict[str, Any], text: str, now: datetime) -> list[wh.WebhookEvent]:
    """``lead.replied`` / ``lead.auto_replied`` / ``lead.bounced`` for a message acted on (an
    unsubscribe or complaint is reported by the suppression it caused)."""
    lead = leads_in(s, [v["lead_id"]]).get(v["lead_id"])
    if lead is None:
        return []
    touch = s.get(m.Touch, v["touch_id"]) if v.get("touch_id") else None
    campaign, step = (touch.campaign, touch.step_id) if touch else (None, None)
    if v["cls"] == "human":
        return [wh.lead_replied(lead, now, campaign, step, v["cls"], v.get("subclass"), text)]
    if v["cls"] == "auto_reply":
        return [wh.lead_auto_replied(lead, now, campaign, v.get("return_date"))]
    if v["cls"] == "bounce":
        return [wh.lead_bounced(lead, now, campaign, step, v.get("subclass") or "soft",
                                v.get("reason") or "")]
    return []
