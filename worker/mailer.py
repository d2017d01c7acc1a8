"""From campaign, step and lead to the finished mail: mailbox routing, headers, bytes.

Used by the worker at send time, by `preview` and by `send-test`, so all three produce the
same headers.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from worker.config import MailboxSettings, Settings, SmtpSettings
from worker.domain import mime, policy, tokens
from worker.domain.campaigns import Campaign
from worker.domain.model import Lead
from worker.domain.render import Rendered
from worker.domain.sequence import TouchPlan
from worker.ports import Envelope

DEFAULT_MAILBOX = "default"


@dataclass(frozen=True)
class Route:
    mailbox: str
    from_name: str
    from_addr: str


class Mailboxes:
    """The configured mailboxes: ``[smtp]``/``[imap]`` as "default", plus ``[mailboxes.*]``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.named: dict[str, MailboxSettings] = dict(settings.mailboxes)
        self._by_address = {mime.split_address(mb.address)[1].lower(): name
                            for name, mb in self.named.items()}

    def names(self) -> list[str]:
        return [DEFAULT_MAILBOX, *self.named]

    def smtp(self, name: str) -> SmtpSettings:
        return self.named[name].smtp if name in self.named else self.settings.smtp

    def route(self, campaign: Campaign, lead: Lead) -> Route:
        """A campaign's ``sender`` naming a mailbox wins; else the lead's owner's mailbox;
        else the mailbox whose address is the sender's; else the default one."""
        if campaign.sender in self.named:
            name, addr = mime.split_address(self.named[campaign.sender].address)
            return Route(campaign.sender, name, addr)
        if lead.owner and lead.owner.lower() in self._by_address:
            box = self._by_address[lead.owner.lower()]
            name, addr = mime.split_address(self.named[box].address)
            return Route(box, name, addr)
        name, addr = mime.split_address(campaign.sender)
        return Route(self._by_address.get(addr.lower(), DEFAULT_MAILBOX), name, addr)

    def cap(self, name: str) -> Callable[[int, int, datetime | None, datetime], int] | None:
        """How many more mails the mailbox may plan now, or None when it has no caps."""
        smtp = self.smtp(name)
        if not (smtp.hourly_cap or smtp.daily_cap or smtp.warmup_start):
            return None

        def allowed(hour: int, day: int, first: datetime | None, now: datetime) -> int:
            return policy.allowance(smtp.hourly_cap, smtp.daily_cap, smtp.warmup_start,
                                    smtp.warmup_days, hour, day, first, now)

        return allowed


class MailFactory:
    """Renders a step for a lead and writes the message with every header the spec asks for."""

    def __init__(self, settings: Settings, secret_key: bytes, install_tag: str = "") -> None:
        self.settings = settings
        self.key = secret_key
        self.install = install_tag
        self.base_url = settings.http.base_url()
        self.mailboxes = Mailboxes(settings)

    def context(self, campaign: Campaign, lead: Lead, step_id: str, route: Route,
                token: str) -> dict[str, Any]:
        domain = route.from_addr.rpartition("@")[2] or "localhost"
        return {
            "lead": lead.template_view(),
            "campaign": {"name": campaign.name, "slug": campaign.slug},
            "step": {"id": step_id},
            "sender": {"name": route.from_name, "email": route.from_addr},
            "unsubscribe_url": f"{self.base_url}/u/{token}",
            "unsubscribe_mailto": tokens.unsubscribe_mailto(token, domain),
        }

    def build(self, campaign: Campaign, touch: TouchPlan, lead: Lead, enrollment_id: int,
              now: datetime, to: str | None = None, message_id: str | None = None
              ) -> tuple[Envelope, str]:
        """The envelope and subject of one step or issue. Raises TemplateError."""
        envelope, subject, _ = self.build_full(campaign, touch, lead, enrollment_id, now, to,
                                               message_id)
        return envelope, subject

    def build_full(self, campaign: Campaign, touch: TouchPlan, lead: Lead, enrollment_id: int,
                   now: datetime, to: str | None = None, message_id: str | None = None
                   ) -> tuple[Envelope, str, Rendered]:
        """Like ``build``, with the rendered parts (for `preview`)."""
        route = self.mailboxes.route(campaign, lead)
        domain = route.from_addr.rpartition("@")[2] or "localhost"
        token = tokens.make_unsubscribe_token(self.key, lead.id, campaign.slug)
        step_id = touch.step.id
        ctx = self.context(campaign, lead, step_id, route, token)
        rendered = campaign.mails[step_id].render(ctx)
        subject = rendered.subject
        mid = message_id or (touch.resume.message_id if touch.resume and touch.resume.message_id
                             else tokens.message_id(enrollment_id, step_id, domain, self.install,
                                               self.key))
        headers: list[tuple[str, str]] = [
            ("From", mime.address(route.from_name, route.from_addr)),
            ("To", mime.address(_full_name(lead), to or lead.email)),
        ]
        if campaign.reply_to:
            name, addr = mime.split_address(campaign.reply_to)
            headers.append(("Reply-To", mime.address(name, addr)))
        parent = touch.thread_parent
        if parent is not None and parent.message_id:
            base = parent.subject or subject
            subject = base if base.lower().startswith("re:") else f"Re: {base}"
            refs = " ".join(f"<{r}>" for r in (touch.references or (parent.message_id,)))
            headers.append(("In-Reply-To", f"<{parent.message_id}>"))
            headers.append(("References", refs))
        headers += [
            ("Subject", mime.encode_text(subject)),
            ("Date", mime.date_header(now)),
            ("Message-ID", f"<{mid}>"),
            ("List-Unsubscribe", f"<{ctx['unsubscribe_url']}>, <{ctx['unsubscribe_mailto']}>"),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("X-Nurture-Campaign", f"{campaign.slug}/{step_id}"),
        ]
        if campaign.kind == "newsletter":
            headers.append(("Precedence", "bulk"))
        step = touch.step
        files = tuple(campaign.attachments[a] for a in getattr(step, "attachments", ())
                      if a in campaign.attachments)
        data = mime.build_message(headers, rendered.text, rendered.html, files)
        return Envelope(route.from_addr, to or lead.email, mid, data, route.mailbox), subject, \
            rendered


def _full_name(lead: Lead) -> str:
    return " ".join(p for p in (lead.first_name, lead.last_name) if p)


def install_tag(hash_key: bytes) -> str:
    """A short stable tag of this installation for Message-IDs."""
    return hashlib.sha256(b"install" + hash_key).hexdigest()[:8]
