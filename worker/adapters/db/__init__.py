"""The database adapter: one ``Database`` class assembled from its rooms."""

from __future__ import annotations

from worker.adapters.db.inbox_store import InboxMixin
from worker.adapters.db.ledger import SendingMixin
from worker.adapters.db.store import Store


class Database(Store, SendingMixin, InboxMixin):
    """Leads and enrolments, the sending ledger, and inbound state, on one engine."""


__all__ = ["Database"]
