"""The database adapter: one ``Database`` class assembled from its rooms."""

from __future__ import annotations

from worker.adapters.db.http_store import HttpMixin
from worker.adapters.db.inbox_store import InboxMixin
from worker.adapters.db.ledger import SendingMixin
from worker.adapters.db.queries import QueriesMixin
from worker.adapters.db.store import Store


class Database(Store, SendingMixin, InboxMixin, HttpMixin, QueriesMixin):
    """Leads and enrolments, the sending ledger, and inbound state, on one engine."""


__all__ = ["Database"]
