"""``POST /api/leads``, ``POST /api/events`` and ``POST /api/leads/{email}/unsubscribe``:
bearer token, JSON or form bodies, field errors, and ``Idempotency-Key`` replays.

The work itself (``Service.intake``, ``Service.record_event``) blocks on the database, so it
runs in the HTTP thread pool together with the idempotency bookkeeping: a request whose
client gave up still finishes and records its answer for the retry.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from worker.adapters.db.http_store import IN_PROGRESS
from worker.adapters.http.io import HttpError, answer, form_dict, media_type, read_data
from worker.domain.leads import normalize_email
from worker.errors import LeadError, NotFound, StoreError, UserError
from worker.logs import mask

if TYPE_CHECKING:
    from worker.adapters.http.context import Context

log = logging.getLogger(__name__)
_KEY_RE = re.compile(r"^[\x21-\x7e]{1,200}$")
Outcome = tuple[int, dict[str, Any]]


class Api:
    """The write endpoints of the API."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # --- endpoints -------------------------------------------------------------------------

    async def leads(self, request: Request) -> Response:
        """Create or update a lead and enrol it: 201 ``{"id", "email", "enrolled"}``."""
        self._authorize(request)
        data, raw = await read_data(request)
        if isinstance(data, FormData):
            data = form_dict(data, comma_keys=("tags",))
        return await self._once(request, "leads", raw, lambda: self._intake(data))

    async def events(self, request: Request) -> Response:
        """Record an interaction: 201 ``{"lead_id", "enrolled"}``."""
        self._authorize(request)
        data, raw = await read_data(request)
        if isinstance(data, FormData):
            data = _event_form(form_dict(data))
        return await self._once(request, "events", raw, lambda: self._event(data))

    async def unsubscribe(self, request: Request) -> Response:
        """Unsubscribe a lead from everything (``lead.unsubscribed`` how=api): 200
        ``{"email", "unsubscribed": true, "changed"}``; again: 200, ``changed`` false; an
        unknown lead: 404; a malformed address: 400."""
        self._authorize(request)
        email = request.path_params["email"]
        return await self._once(request, "unsubscribe", email.encode("utf-8", "replace"),
                                lambda: self._unsubscribe(email))

    # --- the work (in the pool) --------------------------------------------------------------

    def _intake(self, data: Mapping[str, Any]) -> Outcome:
        campaign = data.get("campaign")
        if campaign is not None and not isinstance(campaign, str):
            return 400, {"errors": {"campaign": "must be the slug of a campaign"}}
        campaign = (campaign or "").strip() or None
        source = _source(data)
        for attempt in (1, 2):
            try:
                result = self.ctx.app.service.intake(data, campaign=campaign, source=source)
                break
            except LeadError as exc:
                return 400, {"errors": {exc.field: exc.reason}}
            except NotFound as exc:
                if campaign is None:
                    raise
                return 400, {"errors": {"campaign": str(exc)}}
            except UserError as exc:
                return 400, {"error": str(exc)}
            except IntegrityError:
                if attempt == 2:
                    raise
                # The same new address (or enrolment) was stored by a concurrent request.
        email = normalize_email(data.get("email"))
        log.debug("action=api_lead lead=%s outcome=%s enrolled=%s", mask(email), result.outcome,
                  ",".join(result.enrolled) or "-")
        return 201, {"id": result.lead_id, "email": email, "enrolled": result.enrolled,
                     "already_enrolled": result.already, "outcome": result.outcome}

    def _event(self, data: Mapping[str, Any]) -> Outcome:
        unknown = sorted(set(data) - {"email", "type", "fields", "source"})
        if unknown:
            return 400, {"errors": {k: "unknown key; send event data under fields"
                                    for k in unknown}}
        kind = data.get("type")
        if not isinstance(kind, str) or not kind.strip():
            return 400, {"errors": {"type": "an event type is required (e.g. webinar)"}}
        fields = data.get("fields") or {}
        if not isinstance(fields, Mapping):
            return 400, {"errors": {"fields": "must be an object of name: value"}}
        for attempt in (1, 2):
            try:
                lead_id, enrolled = self.ctx.app.service.record_event(
                    data.get("email"), kind, fields, _source(data))  # type: ignore[arg-type]
                break
            except LeadError as exc:
                return 400, {"errors": {exc.field: exc.reason}}
            except UserError as exc:
                return 400, {"error": str(exc)}
            except IntegrityError:
                if attempt == 2:
                    raise
        return 201, {"lead_id": lead_id, "enrolled": enrolled}

    def _unsubscribe(self, email: str) -> Outcome:
        by_hand = self.ctx.app.by_hand
        try:
            email = normalize_email(email)
            lead_id = by_hand.lead_id(email)
        except LeadError as exc:
            return 400, {"errors": {exc.field: exc.reason}}
        except NotFound:
            return 404, {"error": "no lead with this address"}
        changed = by_hand.unsubscribe(lead_id, "api")
        return 200, {"email": email, "unsubscribed": True, "changed": changed}

    # --- plumbing --------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        expected = self.ctx.app.settings.api_token.reveal()
        challenge = 'Bearer realm="nurture"'
        if not expected:
            raise HttpError.message(401, "the API is disabled: set NURTURE_API_TOKEN in the "
                                    "worker's environment to enable it",
                                    WWW_Authenticate=challenge)
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
                given.strip().encode("utf-8", "replace"), expected.encode("utf-8")):
            raise HttpError.message(401, "a valid API token is required: Authorization: "
                                    "Bearer <NURTURE_API_TOKEN>",
                                    WWW_Authenticate=f'{challenge}, error="invalid_token"')

    async def _once(self, request: Request, endpoint: str, raw: bytes,
                    work: Callable[[], Outcome]) -> Response:
        """Do ``work`` in the pool; with an ``Idempotency-Key``, at most once per key."""
        key = request.headers.get("idempotency-key")
        if key is None:
            status, body = await self.ctx.run(self._guarded, work)
            return answer(status, body)
        if not _KEY_RE.match(key):
            raise HttpError.message(400, "Idempotency-Key must be 1 to 200 printable ASCII "
                                    "characters without spaces")
        stored = f"{endpoint}:{key}"
        fingerprint = hashlib.sha256(b"\0".join(
            [endpoint.encode(), media_type(request).encode(), raw])).hexdigest()
        earlier = await self.ctx.run(self.ctx.app.db.reserve_idempotency_key, stored,
                                     fingerprint)
        if earlier is not None:
            if earlier.fingerprint != fingerprint:
                raise HttpError.message(422, "this Idempotency-Key was already used for a "
                                        "different request")
            if earlier.status == IN_PROGRESS or earlier.body is None:
                raise HttpError.message(409, "a request with this Idempotency-Key is still "
                                        "being processed; retry shortly", Retry_After="1")
            return answer(earlier.status, earlier.body, {"Idempotent-Replayed": "true"})
        status, body = await self.ctx.run(self._keep_answer, stored, fingerprint, work)
        return answer(status, body)

    def _keep_answer(self, key: str, fingerprint: str, work: Callable[[], Outcome]) -> Outcome:
        db = self.ctx.app.db
        try:
            status, body = self._guarded(work)
        except BaseException:
            _forget(db, key)
            raise
        if status >= 500:
            _forget(db, key)
        else:
            db.finish_idempotency_key(key, fingerprint, status, body)
        return status, body

    @staticmethod
    def _guarded(work: Callable[[], Outcome]) -> Outcome:
        try:
            return work()
        except StoreError as exc:
            log.warning("action=api_store_failed error=%r", str(exc)[:300])
            return 503, {"error": "the database is not answering; try again shortly"}


def _forget(db: Any, key: str) -> None:
    with contextlib.suppress(StoreError):  # else the reservation goes stale, taken over later
        db.release_idempotency_key(key)


def _source(data: Mapping[str, Any]) -> str:
    given = data.get("source")
    if isinstance(given, str) and given.strip() and not re.search(r"[\x00-\x1f]", given):
        return f"api:{given.strip()[:190]}"
    return "api"


def _event_form(data: dict[str, Any]) -> dict[str, Any]:
    """In a form, every key but email, type and source is an event field."""
    out: dict[str, Any] = {k: data.pop(k) for k in ("email", "type", "source") if k in data}
    fields = data.pop("fields", {})
    out["fields"] = {**data, **(fields if isinstance(fields, dict) else {})}
    return out
