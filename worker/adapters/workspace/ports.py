"""What the workspace needs from the rest of the worker, as narrow protocols."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from worker.adapters.db.workspace_rows import ActionRow, LeadLine, RepFigures, Reply, Task
from worker.config import Settings
from worker.domain.catalog import Catalog
from worker.ports import Clock, TaskRow
from worker.usecases.campaign_views import CampaignViews
from worker.usecases.notify import NoteRow
from worker.usecases.reclassify import Reclassified


class WorkspaceStore(Protocol):
    """The workspace's own rows (``WorkspaceRows``)."""

    def owns_leads(self, email: str) -> bool: ...
    def add_login_token(self, token_hash: str, email: str, now: datetime,
                        expires_at: datetime) -> None: ...
    def use_login_token(self, token_hash: str, now: datetime) -> str | None: ...
    def add_session(self, token_hash: str, email: str, now: datetime,
                    expires_at: datetime) -> None: ...
    def session_email(self, token_hash: str, now: datetime) -> str | None: ...
    def end_session(self, token_hash: str) -> None: ...
    def lead_owner(self, lead_id: int) -> tuple[bool, str | None]: ...
    def task_lead(self, touch_id: int) -> int | None: ...
    def inbound_lead(self, inbound_id: int) -> int | None: ...
    def log_action(self, lead_id: int, actor: str, action: str, detail: str | None,
                   now: datetime, inbound_id: int | None = None,
                   touch_id: int | None = None) -> None: ...
    def actions_of(self, lead_id: int) -> list[ActionRow]: ...
    def snooze(self, touch_id: int, until: datetime) -> None: ...
    def replies_waiting(self, owner: str | None, limit: int = 50) -> list[Reply]: ...
    def open_tasks(self, owner: str | None, limit: int = 200) -> list[Task]: ...
    def lead(self, lead_id: int) -> dict[str, Any] | None: ...
    def search(self, owner: str | None, text: str, campaign: str, status: str,
               owner_filter: str, page: int, per_page: int = 50
               ) -> tuple[list[LeadLine], bool]: ...
    def team(self, owners: list[str], now: datetime) -> list[RepFigures]: ...
    def owners(self) -> list[str]: ...
    def campaign_statuses(self) -> dict[str, dict[str, int]]: ...


class HandActions(Protocol):
    """The command line's own use-cases for what a person does (``ByHand``)."""

    def pause(self, email: str, campaign: str | None) -> list[str]: ...
    def resume(self, email: str, campaign: str | None) -> list[str]: ...
    def cancel(self, email: str, campaign: str | None) -> list[str]: ...
    def unsubscribe(self, lead_id: int, source: str) -> bool: ...
    def complete_task(self, touch_id: int, note: str | None) -> TaskRow: ...


class Enrol(Protocol):
    """Enrolment by hand (``Intake.enroll``)."""

    def enroll(self, lead_id: int, slug: str, priority: int = 0,
               reason: str = "enrolled") -> bool: ...


@dataclass(frozen=True)
class WorkspacePorts:
    """Everything the workspace uses, built by the composition root.

    Args:
        settings: ``[app]``, ``[team]``, ``http.public_url``.
        store: the workspace's rows.
        by_hand: pause, resume, cancel, unsubscribe, task done.
        intake: enrol in a campaign.
        catalog: the current campaigns.
        clock: now.
        send_mail: sends one mail to a person on our side through the outbound transport
            (the sign-in link); returns an error text or None.
        secret_key: signs CSRF tokens.
        views: the campaign page's data and a lead's mails and tasks rendered
            (``CampaignViews``); without it the campaign page shows the steps as written.
        reclassify: corrects an inbound message's class for a person (``Reclassify``:
            message id, ``CLASS[/SUBCLASS]``, who); without it the Lead page offers no form.
    """

    settings: Settings
    store: WorkspaceStore
    by_hand: HandActions
    intake: Enrol
    catalog: Callable[[], Catalog]
    clock: Clock
    send_mail: Callable[[NoteRow], Awaitable[str | None]]
    secret_key: bytes
    views: CampaignViews | None = None
    reclassify: Callable[[int, str, str], Reclassified] | None = None
