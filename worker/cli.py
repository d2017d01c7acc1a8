"""The command line: parses, builds settings once, calls the app.

Every command exits 0 on success and 1 on a user error, printed as one line that names the
file, line or field, never as a traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from typing import Any

from worker.config import Settings, load_settings
from worker.errors import NurtureError, UserError

EPILOG = """configuration: config/nurture.toml (or NURTURE_CONFIG), overridden by
NURTURE_<SECTION>__<KEY> variables; secrets only from the environment
(NURTURE_SECRET_KEY, NURTURE_API_TOKEN, NURTURE_SMTP__PASSWORD, NURTURE_IMAP__PASSWORD,
NURTURE_OAUTH2__CLIENT_SECRET).
See README.md for every command and key."""


def _add(sub: Any, name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler=handler)
    return parser


def _group(sub: Any, name: str, help_text: str) -> Any:
    """A command with actions (``nurture NAME ACTION``); alone it prints its help."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(handler="help", parser=parser)
    return parser.add_subparsers(dest=f"{name}_command", metavar="ACTION")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nurture", description="Nurture: self-hosted email-nurture worker. Sends each lead "
        "the next step of its campaign when due, stops at the first reply.", epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", metavar="FILE", help="configuration file (default: "
                        "NURTURE_CONFIG or config/nurture.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    _add(sub, "init", "worker.commands.ops:init", "create or migrate the database (Alembic)")
    p = _add(sub, "check", "worker.commands.campaigns:check", "lint campaigns: schema, dates, "
             "templates, links, unsubscribe, size; prints file:line: message")
    p.add_argument("campaigns", nargs="*", metavar="CAMPAIGN",
                   help="slug, campaign folder or folder of campaigns (default: all)")
    p = _add(sub, "preview", "worker.commands.campaigns:preview", "render one step to .eml, "
             ".html and .txt")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("step", metavar="STEP", help="step id (or newsletter issue id)")
    p.add_argument("--lead", metavar="EMAIL|FILE", help="a stored lead's address, or a JSON/TOML "
                   "file with lead fields (default: a built-in sample lead)")
    p.add_argument("--out", metavar="DIR", default="preview", help="output folder (created if "
                   "needed; default: preview)")
    p = _add(sub, "simulate", "worker.commands.campaigns:simulate", "print the calendar of every "
             "touch a lead would get")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("--start", metavar="ISO", help="start time (default: now); without an offset "
                   "it is in the lead's zone")
    p.add_argument("--lead", metavar="FILE", help="JSON/TOML file with lead fields (default: a "
                   "sample lead in the campaign's default_timezone)")
    p = _add(sub, "send-test", "worker.commands.campaigns:send_test", "send one rendered step to "
             "yourself through the configured SMTP")
    p.add_argument("campaign", metavar="CAMPAIGN")
    p.add_argument("step", metavar="STEP")
    p.add_argument("--to", required=True, metavar="EMAIL")
    p.add_argument("--lead", metavar="EMAIL|FILE", help="render for this lead (default: sample)")

    lsub = _group(sub, "leads", "import and list leads")
    p = _add(lsub, "import", "worker.commands.leads:import_leads", "import CSV or JSON lines "
             "(upsert by address; bad rows reported, good rows kept)")
    p.add_argument("file", metavar="FILE")
    p.add_argument("--campaign", metavar="SLUG", help="enrol every imported lead")
    p.add_argument("--tag", action="append", default=[], metavar="T", help="add a tag (repeat)")
    p = _add(lsub, "list", "worker.commands.leads:list_leads", "leads with their enrolment status")
    p.add_argument("--campaign", metavar="SLUG")
    p.add_argument("--status", metavar="S")
    p.add_argument("--limit", type=int, default=200)

    p = _add(sub, "enroll", "worker.commands.leads:enroll", "create or update a lead and enrol "
             "it now")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--campaign", required=True, metavar="SLUG")
    p.add_argument("--field", action="append", default=[], metavar="K=V")
    p = _add(sub, "event", "worker.commands.leads:event", "record an interaction (webinar, "
             "download, visit, contact_request), optionally with fields")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("type", metavar="TYPE")
    p.add_argument("--field", action="append", default=[], metavar="K=V")
    for name, text in (("pause", "pause a lead (all campaigns, or one)"),
                       ("resume", "resume a paused or replied lead from its next step"),
                       ("cancel", "cancel a lead's enrolments")):
        p = _add(sub, name, f"worker.commands.leads:{name}", text)
        p.add_argument("email", metavar="EMAIL")
        p.add_argument("--campaign", metavar="SLUG")
    p = _add(sub, "unsubscribe", "worker.commands.leads:unsubscribe", "suppress a lead: nothing "
             "more from any campaign")
    p.add_argument("email", metavar="EMAIL")
    ssub = _group(sub, "suppress", "suppression list")
    p = _add(ssub, "import", "worker.commands.leads:suppress_import", "add addresses or whole "
             "domains (@example.com), one per line")
    p.add_argument("file", metavar="FILE")

    p = _add(sub, "run", "worker.commands.ops:run", "the worker: sends due steps, watches the "
             "inbox, serves HTTP")
    p.add_argument("--once", action="store_true", help="one pass: send what is due, read the "
                   "inbox, exit")
    isub = _group(sub, "inbox", "inbound mail tools")
    p = _add(isub, "classify", "worker.commands.ops:inbox_classify", "classify saved "
             "messages without touching any mailbox")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line and file")
    p = _add(isub, "reclassify", "worker.commands.ops:inbox_reclassify", "correct an inbound "
             "message's class: undo what it did, take the new action, record who")
    p.add_argument("id", type=int, metavar="ID", help="the inbound message's id (lead show)")
    p.add_argument("target", metavar="CLASS[/SUBCLASS]", help="e.g. human/interested")
    p.add_argument("--by", metavar="WHO", help="who corrects it (default: the OS user)")
    lsub2 = _group(sub, "lead", "one lead")
    p = _add(lsub2, "show", "worker.commands.people:lead_show", "the lead, its enrolments, every "
             "touch and inbound message")
    p.add_argument("email", metavar="EMAIL")
    p.add_argument("--json", action="store_true")
    p = _add(sub, "report", "worker.commands.report:report", "per campaign and step: sent, "
             "replied, auto-replied, bounced, unsubscribed, completed, reply rate")
    p.add_argument("--campaign", metavar="SLUG")
    p.add_argument("--json", action="store_true")
    p.add_argument("--html", metavar="FILE", help="write a self-contained HTML report with charts")
    p = _add(sub, "tasks", "worker.commands.people:tasks", "open tasks for reps "
             "(`tasks done ID [--note TEXT]` to finish one)")
    p.add_argument("action", nargs="?", choices=["done"], help="done: mark a task done")
    p.add_argument("id", nargs="?", type=int, metavar="ID")
    p.add_argument("--owner", metavar="EMAIL")
    p.add_argument("--note", metavar="TEXT")
    p.add_argument("--json", action="store_true")
    p = _add(sub, "forget", "worker.commands.people:forget", "erase a lead's data; keep only a "
             "hash so it is never mailed again")
    p.add_argument("email", metavar="EMAIL")
    p = _add(sub, "export", "worker.commands.people:export", "everything held about a lead, "
             "as JSON")
    p.add_argument("email", metavar="EMAIL")
    p = _add(sub, "doctor", "worker.commands.doctor:doctor", "check the DNS of sending "
             "domains: SPF, DKIM, DMARC and the reply domain's MX; exit 1 on a failure")
    p.add_argument("domains", nargs="*", metavar="DOMAIN", help="default: the domains of "
                   "smtp.address and mailboxes.*.address")
    p.add_argument("--json", action="store_true")
    wsub = _group(sub, "webhooks", "webhook endpoints")
    _add(wsub, "secret", "worker.commands.webhooks:secret", "print a new signing secret "
         "(whsec_...) for NURTURE_WEBHOOKS__NAME__SECRET")
    p = _add(wsub, "list", "worker.commands.webhooks:list_", "each endpoint: pending, "
             "delivered, failed, the last error and when")
    p.add_argument("--json", action="store_true")
    p = _add(wsub, "test", "worker.commands.webhooks:test", "post a ping to an endpoint now "
             "and print its answer")
    p.add_argument("name", metavar="NAME")
    p = _add(wsub, "replay", "worker.commands.webhooks:replay", "send an endpoint's events "
             "again (same webhook-id)")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--since", metavar="ISO", help="only events created from then on")
    p.add_argument("--failed", action="store_true", help="only the events given up")
    msub = _group(sub, "mailbox", "mailbox sign-in, checks and state")
    p = _add(msub, "login", "worker.commands.mailbox:login", "sign a mailbox in with OAuth 2.0 "
             "(authorization code, PKCE, loopback redirect) and store its refresh token")
    p.add_argument("name", nargs="?", metavar="NAME", help="default: the default mailbox")
    p.add_argument("--no-browser", action="store_true", help="only print the URL to open")
    p.add_argument("--timeout-s", type=float, default=300.0, help="wait this long (default 300)")
    p = _add(msub, "test", "worker.commands.mailbox_test:test", "connect as the worker would: "
             "SMTP, TLS, sign-in, IMAP, folder, IDLE, UIDVALIDITY; exit 1 on a failure")
    p.add_argument("name", nargs="?", metavar="NAME")
    p.add_argument("--json", action="store_true")
    p = _add(msub, "list", "worker.commands.mailbox:list_mailboxes", "each mailbox: address, "
             "auth, caps, connected account, last send, last inbox read, state")
    p.add_argument("--json", action="store_true")
    p = _add(msub, "resume", "worker.commands.mailbox:resume", "let a mailbox paused by the "
             "bounce guard send again")
    p.add_argument("name", metavar="NAME")
    p = _add(sub, "status", "worker.commands.ops:status", "for ops: due backlog, sends per "
             "mailbox against caps, last inbox check, workers alive")
    p.add_argument("--json", action="store_true")
    return parser


def _resolve(handler: str) -> Callable[[argparse.Namespace, Callable[[], Settings]], int]:
    module, _, name = handler.partition(":")
    mod = __import__(module, fromlist=[name])
    return getattr(mod, name)  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        from worker.engine.signals import catch_early_stop
        catch_early_stop()  # before the heavy imports of the worker
    if not getattr(args, "handler", None):
        parser.print_help()
        return 0
    if args.handler == "help":
        args.parser.print_help()
        return 0
    cached: list[Settings] = []

    def settings() -> Settings:
        if not cached:
            cached.append(load_settings(args.config))
            from worker import logs
            s = cached[0]
            secrets = [s.secret_key.reveal(), s.api_token.reveal(), s.smtp.password.reveal(),
                       s.imap.password.reveal(), s.oauth2.client_secret.reveal()]
            for mb in s.mailboxes.values():
                secrets += [mb.smtp.password.reveal(), mb.imap.password.reveal(),
                            mb.oauth2.client_secret.reveal()]
            secrets += [ep.secret.reveal() for ep in s.webhooks.endpoints.values()]
            logs.setup("DEBUG" if args.verbose else s.logging.level, s.logging.format, secrets)
        return cached[0]

    try:
        return _resolve(args.handler)(args, settings)
    except UserError as exc:
        print(f"nurture: {exc}", file=sys.stderr)
        return 1
    except NurtureError as exc:
        print(f"nurture: error: {exc}", file=sys.stderr)
        if args.verbose:
            raise
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception:
        logging.getLogger(__name__).exception("action=internal_error command=%s", args.command)
        print("nurture: internal error (details above); please report it", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
