"""The database adapter: rooms composed over one ``Connection`` (engine + session factory).

``db.leads`` (leads, suppression, events, enrolments), ``db.sending`` (claims and the
ledger), ``db.inbox`` (inbound mail, leases, notifications, workers), ``db.http``
(idempotency keys), ``db.reports`` (read-only reporting rows) and ``db.people`` share one
connection. The composition root hands each use-case the room it needs; ``Database`` also
forwards every room's methods under their own names, so commands and tests read
``db.lead_by_email`` as before.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import Engine

from worker.adapters.db.base import Connection
from worker.adapters.db.http_store import HttpRows
from worker.adapters.db.inbox_store import InboxRows
from worker.adapters.db.ledger import SendingRows
from worker.adapters.db.people import PeopleRows
from worker.adapters.db.queries import Reports
from worker.adapters.db.store import LeadRows
from worker.ports import Clock


class Database:
    """The rooms of the database over one connection, and a flat view of their methods."""

    def __init__(self, engine: Engine, clock: Clock | None = None,
                 webhooks: Mapping[str, frozenset[str] | None] | None = None) -> None:
        conn = self.conn = Connection(engine, clock, webhooks)
        self.clock = conn.clock
        self.leads = LeadRows(conn)
        self.sending = SendingRows(conn)
        self.inbox = InboxRows(conn)
        self.http = HttpRows(conn)
        self.reports = Reports(conn)
        self.people = PeopleRows(conn.session)
        # The connector's own: schema, liveness, the clock, the hash key.
        self.is_sqlite = conn.is_sqlite
        self.now = conn.now
        self.migrate = conn.migrate
        self.check_schema = conn.check_schema
        self.checkpoint = conn.checkpoint
        self.ping = conn.ping
        self.hash_key = conn.hash_key
        self.email_hash = conn.email_hash
        self.session = conn.session
        self.outbox = conn.outbox  # the webhook outbox (None: no endpoint enabled)
        self.webhook_stats = conn.webhook_stats
        # leads
        self.upsert_leads = self.leads.upsert_leads
        self.lead_by_email = self.leads.lead_by_email
        self.lead_by_id = self.leads.lead_by_id
        self.lead_ids_by_domain = self.leads.lead_ids_by_domain
        self.set_lead_fields = self.leads.set_lead_fields
        self.suppression_for = self.leads.suppression_for
        self.suppressed_among = self.leads.suppressed_among
        self.suppressed_count = self.leads.suppressed_count
        self.add_suppression = self.leads.add_suppression
        self.close_enrollments = self.leads.close_enrollments
        self.suppress_lead = self.leads.suppress_lead
        self.add_event = self.leads.add_event
        self.enroll = self.leads.enroll
        self.enrollments_of = self.leads.enrollments_of
        self.set_enrollment = self.leads.set_enrollment
        self.prioritize = self.leads.prioritize
        self.finish_task = self.leads.finish_task
        self.delete_lead = self.leads.delete_lead
        # sending
        self.release_all_claims = self.sending.release_all_claims
        self.release_claims = self.sending.release_claims
        self.renew_claims = self.sending.renew_claims
        self.next_due_at = self.sending.next_due_at
        self.due_backlog = self.sending.due_backlog
        self.wake_newsletter = self.sending.wake_newsletter
        self.claim_due = self.sending.claim_due
        self.claim_rows = self.sending.claim_rows
        self.load_claimed = self.sending.load_claimed
        self.mailbox_usage = self.sending.mailbox_usage
        self.plan = self.sending.plan
        self.record = self.sending.record
        # inbox
        self.inbound_lock = self.inbox.inbound_lock
        self.inbound_seen = self.inbox.inbound_seen
        self.record_inbound = self.inbox.record_inbound
        self.sent_by_message_ids = self.inbox.sent_by_message_ids
        self.lead_id_by_emails = self.inbox.lead_id_by_emails
        self.last_email_to = self.inbox.last_email_to
        self.add_soft_bounce = self.inbox.add_soft_bounce
        self.load_checkpoint = self.inbox.load_checkpoint
        self.save_checkpoint = self.inbox.save_checkpoint
        self.mailbox_states = self.inbox.mailbox_states
        self.acquire_watch = self.inbox.acquire_watch
        self.release_watch = self.inbox.release_watch
        self.acquire_lease = self.inbox.acquire_lease
        self.release_lease = self.inbox.release_lease
        self.register_worker = self.inbox.register_worker
        self.heartbeat = self.inbox.heartbeat
        self.worker_stopped = self.inbox.worker_stopped
        self.workers_alive = self.inbox.workers_alive
        self.add_notification = self.inbox.add_notification
        self.unsent_notifications = self.inbox.unsent_notifications
        self.mark_notification = self.inbox.mark_notification
        # http
        self.reserve_idempotency_key = self.http.reserve_idempotency_key
        self.finish_idempotency_key = self.http.finish_idempotency_key
        self.release_idempotency_key = self.http.release_idempotency_key
        self.idempotency_answer = self.http.idempotency_answer
        # reports
        self.report_rows = self.reports.report_rows
        self.campaigns_with_data = self.reports.campaigns_with_data
        self.lead_row = self.reports.lead_row
        self.lead_history = self.reports.lead_history
        self.open_tasks = self.reports.open_tasks
        self.task_row = self.reports.task_row
        self.ops_counts = self.reports.ops_counts
        self.erase_address = self.reports.erase_address
        self.suppression_row = self.reports.suppression_row

    @property
    def engine(self) -> Engine:
        """The shared engine (the connection's)."""
        return self.conn.engine


__all__ = ["Database"]
