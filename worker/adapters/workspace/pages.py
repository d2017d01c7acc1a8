"""The workspace's pages and form actions. Every handler runs its database work in a
thread; every page needs a signed-in person (else a redirect to the login page), and every
POST a CSRF token (else 403). A lead, task or message outside what the person sees is 404,
the same answer as one that does not exist."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from worker.adapters.workspace import csrf, views
from worker.adapters.workspace.auth import PRE_COOKIE, SESSION_COOKIE, Auth, Person
from worker.adapters.workspace.ports import WorkspacePorts
from worker.errors import UserError
from worker.usecases.campaign_views import task_text
from worker.usecases.reclassify import SUBCLASSES, label

Handler = Callable[[Request, Person], Awaitable[Response]]
#: What a message may be corrected to, as the Lead page's select offers it.
CLASSES = [label(c, sub) for c, subs in SUBCLASSES.items() for sub in subs]
STATUSES = ("active", "waiting", "paused", "replied", "bounced", "unsubscribed", "completed",
            "failed", "cancelled")


class Pages:
    """The handlers, sharing the ports, the sign-in logic and the templates."""

    def __init__(self, ports: WorkspacePorts, auth: Auth) -> None:
        self.ports, self.auth, self.store = ports, auth, ports.store
        self.env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                               autoescape=select_autoescape(default=True,
                                                            default_for_string=True))
        self.secure = ports.settings.http.base_url().startswith("https://")

    # --- plumbing -----------------------------------------------------------------------------

    def render(self, name: str, person: Person | None, code: int = 200,
               **values: Any) -> HTMLResponse:
        key = person.session_key if person else ""
        html = self.env.get_template(name).render(
            me=person, csrf=csrf.token_for(self.ports.secret_key, key) if key else "", **values)
        return HTMLResponse(html, status_code=code)

    def not_found(self, person: Person) -> HTMLResponse:
        return self.render("not_found.html", person, code=404)

    def signed_in(self, handler: Handler, post: bool = False
                  ) -> Callable[[Request], Awaitable[Response]]:
        """Wrap a handler: a person is needed, and a POST needs its CSRF token."""
        async def endpoint(request: Request) -> Response:
            person = await run_in_threadpool(self.auth.person, request)
            if post:
                form = await request.form()
                key = person.session_key if person else None
                if not csrf.valid(self.ports.secret_key, key, str(form.get("csrf") or "")):
                    return Response("Forbidden: the form's CSRF token is missing or wrong.\n",
                                    status_code=403, media_type="text/plain")
            if person is None:
                return RedirectResponse("/app/login", status_code=303)
            return await handler(request, person)
        return endpoint

    async def may_see(self, person: Person, lead_id: int | None) -> bool:
        if lead_id is None:
            return False
        exists, owner = await run_in_threadpool(self.store.lead_owner, lead_id)
        return exists and (person.manager or owner == person.email)

    # --- sign-in ------------------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        pre = request.cookies.get(PRE_COOKIE) or csrf.token_for(
            self.ports.secret_key, str(id(request)) + str(self.ports.clock.now()))
        page = self.render("login.html", None, sent=False,
                           login_csrf=csrf.token_for(self.ports.secret_key, pre))
        page.set_cookie(PRE_COOKIE, pre, httponly=True, samesite="lax", secure=self.secure,
                        path="/app/")
        return page

    async def login(self, request: Request) -> Response:
        form = await request.form()
        pre = request.cookies.get(PRE_COOKIE)
        if not csrf.valid(self.ports.secret_key, pre, str(form.get("csrf") or "")):
            return Response("Forbidden: the form's CSRF token is missing or wrong.\n",
                            status_code=403, media_type="text/plain")
        client = request.client.host if request.client else "?"
        await self.auth.request_link(str(form.get("email") or ""), client)
        assert pre is not None
        return self.render("login.html", None, sent=True,
                           login_csrf=csrf.token_for(self.ports.secret_key, pre))

    async def open_link(self, request: Request) -> Response:
        session = await run_in_threadpool(self.auth.sign_in, request.path_params["token"])
        if session is None:
            return self.render("link_refused.html", None, code=400)
        page = RedirectResponse("/app/", status_code=303)
        page.set_cookie(SESSION_COOKIE, session, httponly=True, samesite="lax",
                        secure=self.secure, path="/app/",
                        max_age=self.ports.settings.app.session_days * 86400)
        return page

    async def logout(self, request: Request, person: Person) -> Response:
        await run_in_threadpool(self.auth.sign_out, person)
        page = RedirectResponse("/app/login", status_code=303)
        page.delete_cookie(SESSION_COOKIE, path="/app/")
        return page

    # --- Today --------------------------------------------------------------------------------

    async def today(self, request: Request, person: Person) -> Response:
        now = self.ports.clock.now()
        replies = await run_in_threadpool(self.store.replies_waiting, person.sees)
        tasks = await run_in_threadpool(self.store.open_tasks, person.sees)
        return self.render("today.html", person, now=now, replies=[
            {"r": r, "ago": views.ago(r.received_at, now)} for r in replies], tasks=[
            {"t": t, "due": views.local(t.due_at, t.timezone),
             "overdue": t.due_at is not None and t.due_at < now} for t in tasks],
            msg=request.query_params.get("msg", ""))

    async def task_done(self, request: Request, person: Person) -> Response:
        touch_id = request.path_params["touch_id"]
        lead_id = await run_in_threadpool(self.store.task_lead, touch_id)
        if not await self.may_see(person, lead_id):
            return self.not_found(person)
        assert lead_id is not None
        note = str((await request.form()).get("note") or "").strip()[:2000] or None
        try:
            await run_in_threadpool(self.ports.by_hand.complete_task, touch_id, note)
        except UserError as exc:
            return self.back("/app/", str(exc))
        await run_in_threadpool(self.store.log_action, lead_id, person.email, "task done",
                                f"#{touch_id}", self.ports.clock.now(), None, touch_id)
        return self.back("/app/", f"Task #{touch_id} done.")

    async def task_snooze(self, request: Request, person: Person) -> Response:
        touch_id = request.path_params["touch_id"]
        lead_id = await run_in_threadpool(self.store.task_lead, touch_id)
        if not await self.may_see(person, lead_id):
            return self.not_found(person)
        assert lead_id is not None
        days = 7 if (await request.form()).get("days") == "7" else 1
        now = self.ports.clock.now()
        await run_in_threadpool(self.store.snooze, touch_id, now + timedelta(days=days))
        await run_in_threadpool(self.store.log_action, lead_id, person.email, "task snoozed",
                                f"#{touch_id} by {days} d", now, None, touch_id)
        return self.back("/app/", f"Task #{touch_id} snoozed {days} d.")

    async def reply_handled(self, request: Request, person: Person) -> Response:
        inbound_id = request.path_params["inbound_id"]
        lead_id = await run_in_threadpool(self.store.inbound_lead, inbound_id)
        if not await self.may_see(person, lead_id):
            return self.not_found(person)
        assert lead_id is not None
        await run_in_threadpool(self.store.log_action, lead_id, person.email, "reply handled",
                                f"message #{inbound_id}", self.ports.clock.now(), inbound_id)
        return self.back("/app/", "Reply marked handled.")

    async def reclassify(self, request: Request, person: Person) -> Response:
        """Correct a message's class (the same use-case as ``nurture inbox reclassify``),
        recorded with the signed-in person as who, and logged on the lead's timeline."""
        inbound_id = request.path_params["inbound_id"]
        lead_id = await run_in_threadpool(self.store.inbound_lead, inbound_id)
        if not await self.may_see(person, lead_id) or self.ports.reclassify is None:
            return self.not_found(person)
        assert lead_id is not None
        target = str((await request.form()).get("target") or "")
        where = f"/app/leads/{lead_id}"
        try:
            done = await run_in_threadpool(self.ports.reclassify, inbound_id, target,
                                           person.email)
        except UserError as exc:
            return self.back(where, str(exc))
        if not done.changed:
            return self.back(where, f"Message #{inbound_id} is already {done.new}.")
        detail = (f"message #{inbound_id}: {done.old} -> {done.new}; undone: "
                  f"{done.undone or 'nothing'}; action: {done.action}")
        await run_in_threadpool(self.store.log_action, lead_id, person.email, "reclassified",
                                detail, self.ports.clock.now(), inbound_id)
        return self.back(where, f"Reclassified: {detail}")

    @staticmethod
    def back(path: str, msg: str) -> Response:
        return RedirectResponse(f"{path}?msg={quote(msg)}", status_code=303)

    # --- Lead ---------------------------------------------------------------------------------

    async def lead(self, request: Request, person: Person) -> Response:
        lead_id = request.path_params["lead_id"]
        if not await self.may_see(person, lead_id):
            return self.not_found(person)
        data = await run_in_threadpool(self.store.lead, lead_id)
        if data is None:
            return self.not_found(person)
        lead = data["lead"]
        fields = {k: getattr(lead, k) for k in ("email", "first_name", "last_name", "company",
                                                 "title", "phone", "timezone", "country",
                                                 "owner", "source")}
        fields.update({f"fields.{k}": v for k, v in (lead.fields or {}).items()})
        fields["tags"] = ", ".join(lead.tags or [])
        campaigns = self.ports.catalog().campaigns
        enrolments = [{"e": e, "due": views.local(e.next_due_at, lead.timezone),
                       "next": (campaigns[e.campaign].steps[e.next_step].id
                                if e.campaign in campaigns
                                and e.next_step < len(campaigns[e.campaign].steps) else "-")}
                      for e in data["enrollments"]]
        texts = await run_in_threadpool(self.rendered, lead_id, data)
        return self.render("lead.html", person, lead=lead, fields=fields, enrolments=enrolments,
                           timeline=views.timeline(data, lead.timezone, texts),
                           campaigns=sorted(campaigns), msg=request.query_params.get("msg", ""),
                           inbound=data["inbound"] if self.ports.reclassify else [],
                           classes=CLASSES, label=label)

    def rendered(self, lead_id: int, data: dict[str, Any]) -> dict[int, str]:
        """Each mail sent and each task's text, rendered for this lead (escaped by the page)."""
        where = self.ports.views
        lead = where.lead(lead_id) if where else None
        if where is None or lead is None:
            return {}
        out: dict[int, str] = {}
        for t in data["touches"]:
            if t.kind == "task" and t.task_text:
                out[t.id] = task_text(t.task_text, lead)
            elif t.kind == "email" and (t.accepted_at or t.handed_at):
                out[t.id] = where.sent_text(lead, t.campaign, t.step_id,
                                            t.accepted_at or t.handed_at)
        return out

    async def lead_action(self, request: Request, person: Person) -> Response:
        lead_id = request.path_params["lead_id"]
        if not await self.may_see(person, lead_id):
            return self.not_found(person)
        form = await request.form()
        action, campaign = str(form.get("action") or ""), str(form.get("campaign") or "") or None
        data = await run_in_threadpool(self.store.lead, lead_id)
        assert data is not None
        email, hand = data["lead"].email, self.ports.by_hand
        where = f"/app/leads/{lead_id}"
        try:
            if action in ("pause", "resume", "cancel"):
                done = await run_in_threadpool(getattr(hand, action), email, campaign)
                detail = ", ".join(done)
            elif action == "unsubscribe":
                await run_in_threadpool(hand.unsubscribe, lead_id, f"workspace {person.email}")
                detail = "every campaign"
            elif action == "enrol" and campaign:
                if campaign not in self.ports.catalog().campaigns:
                    return self.back(where, f"No campaign {campaign!r}.")
                if not await run_in_threadpool(self.ports.intake.enroll, lead_id, campaign, 0,
                                               f"enrolled by {person.email}"):
                    return self.back(where, f"Not enrolled in {campaign} (already, or not "
                                            "allowed).")
                detail = campaign
            else:
                return self.back(where, "Unknown action.")
        except UserError as exc:
            return self.back(where, str(exc))
        await run_in_threadpool(self.store.log_action, lead_id, person.email, action, detail,
                                self.ports.clock.now())
        return self.back(where, f"{action.capitalize()}: done ({detail}).")
