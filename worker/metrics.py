"""Prometheus metrics (prometheus-client). Every name starts with ``nurture_``.

Each App has its own registry, so tests and several apps in one process do not collide.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

if TYPE_CHECKING:
    from worker.engine.planning import Job

DEGRADED_AFTER = timedelta(minutes=1)  # a door failing this long makes /healthz "degraded"
_SPEED_BUCKETS = (0.1, 0.25, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class Metrics:
    def __init__(self) -> None:
        disable_created_metrics()  # type: ignore[no-untyped-call]  # no *_created series
        self.registry = CollectorRegistry()
        r = self.registry
        self._sent: dict[str, Any] = {}
        self.mails_sent = Counter("nurture_mails_sent", "Mails accepted by the server",
                                  ["mailbox"], registry=r)
        self.mails_failed = Counter("nurture_mails_failed", "Mails refused for good",
                                    ["mailbox", "kind"], registry=r)
        self.mails_deferred = Counter("nurture_mails_deferred", "Mails deferred after a "
                                      "transient failure or a cap", ["mailbox", "reason"],
                                      registry=r)
        self.inbound = Counter("nurture_inbound_messages", "Inbound messages by class",
                               ["class"], registry=r)
        self.enrol_to_first_mail = Histogram(
            "nurture_enrol_to_first_mail_seconds", "From enrolment to the first mail accepted",
            buckets=_SPEED_BUCKETS, registry=r)
        self.reply_to_stop = Histogram(
            "nurture_reply_to_stop_seconds", "From a reply landing in the mailbox to the "
            "enrolment stopped", buckets=_SPEED_BUCKETS, registry=r)
        self.due_backlog = Gauge("nurture_due_backlog", "Enrolments due now and not yet sent",
                                 registry=r)
        self.oldest_due_lag = Gauge("nurture_oldest_due_lag_seconds", "How late the oldest due "
                                    "step is", registry=r)
        self.webhook_deliveries = Counter(
            "nurture_webhook_deliveries", "Webhook delivery attempts by outcome (delivered, "
            "retry, failed)", ["endpoint", "outcome"], registry=r)
        self.webhook_backlog = Gauge("nurture_webhook_backlog", "Webhook events not yet "
                                     "delivered nor given up", ["endpoint"], registry=r)

    def sent(self, job: Job, accepted_at: datetime | None = None) -> None:
        counter = self._sent.get(job.envelope.mailbox)
        if counter is None:  # a label lookup per mail costs more than the count itself
            counter = self._sent[job.envelope.mailbox] = self.mails_sent.labels(job.envelope.mailbox)
        counter.inc()
        if job.first_enrolled_at is not None and accepted_at is not None:
            self.enrol_to_first_mail.observe(
                max((accepted_at - job.first_enrolled_at).total_seconds(), 0.0))

    def failed(self, mailbox: str, kind: str) -> None:
        self.mails_failed.labels(mailbox, kind).inc()

    def deferred(self, mailbox: str, reason: str) -> None:
        self.mails_deferred.labels(mailbox, reason).inc()

    def inbound_message(self, cls: str) -> None:
        self.inbound.labels(cls).inc()

    def replied(self, seconds: float) -> None:
        """A reply stopped its sequences ``seconds`` after it landed in the mailbox."""
        self.reply_to_stop.observe(max(seconds, 0.0))

    def webhook_attempt(self, endpoint: str, outcome: str) -> None:
        """One delivery attempt: delivered, retry, or failed (given up)."""
        self.webhook_deliveries.labels(endpoint, outcome).inc()

    def set_webhook_backlog(self, pending: Mapping[str, int]) -> None:
        """Each endpoint's pending events (read when /metrics is scraped)."""
        for endpoint, count in pending.items():
            self.webhook_backlog.labels(endpoint).set(count)

    def set_backlog(self, count: int, lag_s: float) -> None:
        self.due_backlog.set(count)
        self.oldest_due_lag.set(lag_s)

    def render(self, refresh: Callable[[], None] | None = None) -> bytes:
        if refresh is not None:
            refresh()
        return generate_latest(self.registry)


def health_problems(now: datetime, smtp_failing_since: datetime | None, smtp_error: str | None,
                    mailboxes: Mapping[str, datetime | None], started_at: datetime,
                    after: timedelta = DEGRADED_AFTER) -> list[str]:
    """Why the worker is degraded: SMTP failing every send, or a watched mailbox not read,
    for longer than ``after`` (a mailbox never read counts from the start)."""
    problems: list[str] = []
    if smtp_failing_since is not None and now - smtp_failing_since > after:
        problems.append(f"smtp: every send failed since {smtp_failing_since.isoformat()}"
                        + (f" ({smtp_error})" if smtp_error else ""))
    for name, at in sorted(mailboxes.items()):
        if now - (at or started_at) > after:
            problems.append(f"mailbox {name}: not read since "
                            f"{(at or started_at).isoformat()}")
    return problems
