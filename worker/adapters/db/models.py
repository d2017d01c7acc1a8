"""Tables. SQLite and PostgreSQL share them (and the Alembic migrations).

Times are stored as UTC and come back timezone-aware (``UTCDateTime``); enums are stored as
their lowercase string values.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
ID = BigInteger().with_variant(Integer(), "sqlite")
OPEN_SQL = "status IN ('active', 'waiting', 'paused')"
DUE_SQL = "status IN ('active', 'waiting')"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Store an aware time as naive UTC."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Read a stored time back as aware UTC."""
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


class Base(DeclarativeBase):
    """The declarative base of the ORM models."""
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[str]: JSON()}


class Lead(Base):
    """A person who may be mailed."""
    __tablename__ = "leads"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(200))
    last_name: Mapped[str | None] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200))
    phone: Mapped[str | None] = mapped_column(String(64))
    timezone: Mapped[str | None] = mapped_column(String(64))
    country: Mapped[str | None] = mapped_column(String(64))
    owner: Mapped[str | None] = mapped_column(String(320))
    tags: Mapped[list[str]] = mapped_column(default=list)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str | None] = mapped_column(String(200))
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Enrollment(Base):
    """A lead in a campaign: its next step and when it is due."""
    __tablename__ = "enrollments"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    campaign: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16))
    next_step: Mapped[int] = mapped_column(default=0)
    next_due_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime]
    last_touch_at: Mapped[datetime | None]
    priority: Mapped[int] = mapped_column(default=0)
    attempts: Mapped[int] = mapped_column(default=0)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]

    __table_args__ = (
        Index("ix_enrollments_due", "next_due_at", sqlite_where=text(DUE_SQL),
              postgresql_where=text(DUE_SQL)),
        Index("ix_enrollments_priority", "priority", "next_due_at",
              sqlite_where=text(f"priority > 0 AND {DUE_SQL}"),
              postgresql_where=text(f"priority > 0 AND {DUE_SQL}")),
        Index("uq_enrollments_open", "lead_id", "campaign", unique=True,
              sqlite_where=text(OPEN_SQL), postgresql_where=text(OPEN_SQL)),
        Index("ix_enrollments_claimed", "claimed_until",
              sqlite_where=text("claimed_until IS NOT NULL"),
              postgresql_where=text("claimed_until IS NOT NULL")),
    )


class Touch(Base):
    """A sent (or planned) mail, or a task for the lead's owner."""

    __tablename__ = "touches"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    campaign: Mapped[str] = mapped_column(String(64))
    step_id: Mapped[str] = mapped_column(String(128))
    step_index: Mapped[int]
    kind: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    touch_number: Mapped[int | None]
    message_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    mailbox: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(Text)
    planned_at: Mapped[datetime | None]
    handed_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    smtp_code: Mapped[int | None]
    smtp_response: Mapped[str | None] = mapped_column(Text)
    task_kind: Mapped[str | None] = mapped_column(String(16))
    task_text: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(320))
    due_at: Mapped[datetime | None]
    done_at: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_id"),
        Index("ix_touches_mailbox_planned", "mailbox", "planned_at"),
        Index("ix_touches_campaign_step", "campaign", "step_id"),
        Index("ix_touches_open_tasks", "owner", "due_at",
              sqlite_where=text("kind = 'task' AND state = 'open'"),
              postgresql_where=text("kind = 'task' AND state = 'open'")),
    )


class Inbound(Base):
    """A message read from a watched mailbox, with its class and what was done about it."""

    __tablename__ = "inbound"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(64))
    folder: Mapped[str] = mapped_column(String(255))
    uid: Mapped[str] = mapped_column(String(255))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    fingerprint: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(String(998))
    received_at: Mapped[datetime]
    from_addr: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    cls: Mapped[str] = mapped_column("class", String(16))
    subclass: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(Text)
    return_date: Mapped[date | None] = mapped_column(Date)
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id", ondelete="SET NULL"),
                                                index=True)
    touch_id: Mapped[int | None] = mapped_column(ForeignKey("touches.id", ondelete="SET NULL"))
    matched_by: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(Text)
    excerpt: Mapped[str | None] = mapped_column(Text)
    size: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("mailbox", "fingerprint"),)


class Suppression(Base):
    """An address never to be mailed again, and why."""
    __tablename__ = "suppressions"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    email_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    email: Mapped[str | None] = mapped_column(String(320))
    domain: Mapped[str | None] = mapped_column(String(255), unique=True)
    reason: Mapped[str] = mapped_column(String(32))
    source: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class SoftBounce(Base):
    """A temporary delivery failure, counted towards suppression."""
    __tablename__ = "soft_bounces"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]


class Event(Base):
    """Something a lead did (from the API or the inbox)."""
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source: Mapped[str | None] = mapped_column(String(200))
    at: Mapped[datetime]


class StatusChange(Base):
    """One change of an enrolment's status, with its reason."""
    __tablename__ = "status_changes"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"),
                                               index=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), index=True)
    old: Mapped[str | None] = mapped_column(String(16))
    new: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]


class MailboxState(Base):
    """Where the watcher of one mailbox folder stopped (checkpointed after the work)."""

    __tablename__ = "mailbox_state"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    folder: Mapped[str] = mapped_column(String(255), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    last_uid: Mapped[int] = mapped_column(BigInteger)
    last_success_at: Mapped[datetime | None]


class Lease(Base):
    """Who may do a singular job (watch a mailbox, send the digest) until when."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128))
    until: Mapped[datetime]


class WorkerRow(Base):
    """A worker process and its last heartbeat."""
    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int]
    started_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]


class IdempotencyKey(Base):
    """An API request's idempotency key and its stored answer."""
    __tablename__ = "idempotency_keys"

    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    status: Mapped[int]
    response: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class Meta(Base):
    """Installation-wide values (the hash key)."""
    __tablename__ = "meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class Notification(Base):
    """A mail to a person on our side (a forwarded reply, a task digest, an alert), sent by
    the worker's loop so that it survives a restart."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(ID, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    to_addr: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    mailbox: Mapped[str] = mapped_column(String(64), default="default")
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    # A forwarded reply: answering it goes to the lead, in the thread of the lead's mail
    reply_name: Mapped[str | None] = mapped_column(Text)
    reply_addr: Mapped[str | None] = mapped_column(String(320))
    in_reply_to: Mapped[str | None] = mapped_column(String(998))
    thread_refs: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_notifications_unsent", "id", sqlite_where=text("sent_at IS NULL"),
                            postgresql_where=text("sent_at IS NULL")),)


PENDING_SQL = "status = 'pending'"


class WebhookOutbox(Base):
    """One event for one endpoint, written in the transaction of the change it reports and
    delivered by the worker. ``seq`` orders a lead's events; ``webhook_id`` is the Standard
    Webhooks ``webhook-id``, the same on every attempt; ``body`` is the exact JSON text that
    is signed and posted (kept as text so every retry sends the same bytes)."""

    __tablename__ = "webhook_outbox"

    seq: Mapped[int] = mapped_column(ID, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(64), unique=True)
    endpoint: Mapped[str] = mapped_column(String(64))
    lead_id: Mapped[int | None] = mapped_column(BigInteger)
    type: Mapped[str] = mapped_column(String(64))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime]
    queued_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    last_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_webhook_outbox_due", "next_attempt_at", sqlite_where=text(PENDING_SQL),
              postgresql_where=text(PENDING_SQL)),
        Index("ix_webhook_outbox_lead", "endpoint", "lead_id", "seq",
              sqlite_where=text(PENDING_SQL), postgresql_where=text(PENDING_SQL)),
        Index("ix_webhook_outbox_endpoint_created", "endpoint", "created_at"),
    )


class OAuthToken(Base):
    """A mailbox's OAuth 2.0 sign-in: the refresh token sealed with a key derived from
    NURTURE_SECRET_KEY (never in clear), the account it belongs to, and whether the provider
    has refused it (``revoked_at``: the mailbox waits for `nurture mailbox login`)."""

    __tablename__ = "oauth_tokens"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    account: Mapped[str] = mapped_column(String(320), default="")
    refresh_sealed: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    revoked_error: Mapped[str | None] = mapped_column(Text)


class MailboxPause(Base):
    """A mailbox stopped from sending by the bounce guard, until `nurture mailbox resume`."""

    __tablename__ = "mailbox_pauses"

    mailbox: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(Text)
    paused_at: Mapped[datetime]
