"""The list pages: Leads (search, filters, pages), Campaigns and Team."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from worker.adapters.workspace.auth import Person
from worker.adapters.workspace.pages import STATUSES, Pages


class Lists:
    """Handlers of the pages that list things, on top of ``Pages``' plumbing."""

    def __init__(self, pages: Pages) -> None:
        self.pages, self.ports, self.store = pages, pages.ports, pages.store

    async def leads(self, request: Request, person: Person) -> Response:
        q = request.query_params
        text, campaign = q.get("q", "").strip()[:200], q.get("campaign", "")
        status, owner = q.get("status", ""), q.get("owner", "").strip().lower()
        try:
            page = max(0, int(q.get("page", "0")))
        except ValueError:
            page = 0
        rows, more = await run_in_threadpool(self.store.search, person.sees, text, campaign,
                                             status, owner, page)
        query = {"q": text, "campaign": campaign, "status": status, "owner": owner}
        return self.pages.render(
            "leads.html", person, rows=rows, q=text, campaign=campaign, status=status,
            owner=owner, page=page, campaigns=sorted(self.ports.catalog().campaigns),
            statuses=STATUSES,
            prev=urlencode({**query, "page": page - 1}) if page else "",
            next=urlencode({**query, "page": page + 1}) if more else "")

    async def campaigns(self, request: Request, person: Person) -> Response:
        counts = await run_in_threadpool(self.store.campaign_statuses)
        catalog = self.ports.catalog()
        camps = catalog.campaigns
        return self.pages.render("campaigns.html", person, rows=[
            {"slug": slug, "c": c, "counts": counts.get(slug, {}),
             "total": sum(counts.get(slug, {}).values())} for slug, c in sorted(camps.items())],
            broken=sorted(set(catalog.problems) - set(camps)))

    async def team(self, request: Request, person: Person) -> Response:
        if not person.manager:
            return self.pages.not_found(person)
        auth = self.pages.auth
        owners = sorted(set(await run_in_threadpool(self.store.owners)) | auth.reps)
        rows = await run_in_threadpool(self.store.team, owners, self.ports.clock.now())
        return self.pages.render("team.html", person, rows=rows)

