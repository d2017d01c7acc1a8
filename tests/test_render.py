"""Rendering and message building: sandbox, strict fields, layout, text part, headers."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.workspace import REPO
from worker.adapters.campaign_folders import read_layouts
from worker.config import load_settings
from worker.domain import mime, tokens
from worker.domain.campaigns import Campaign, Step
from worker.domain.model import Lead
from worker.domain.render import Renderer
from worker.domain.sequence import TouchPlan
from worker.errors import TemplateError
from worker.mailer import MailFactory

LAYOUTS = read_layouts(REPO / "templates")
NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def compile_md(body: str, subject: str = "Hi {{ lead.first_name | default('there') }}",
               name: str = "campaigns/t/01.md"):
    return Renderer(LAYOUTS).compile(name, f"---\nsubject: \"{subject}\"\n---\n{body}\n")


def context(lead: Lead) -> dict[str, object]:
    return {"lead": lead.template_view(), "campaign": {"name": "T", "slug": "t"},
            "step": {"id": "one"}, "sender": {"name": "Dana", "email": "dana@acme.example"},
            "unsubscribe_url": "https://mail.acme.example/u/TOKEN",
            "unsubscribe_mailto": "mailto:unsubscribe+TOKEN@acme.example"}


def test_markdown_is_wrapped_in_the_layout_with_inlined_css_and_a_text_part() -> None:
    mail = compile_md("Hello **{{ lead.first_name }}**, see [the report](https://acme.example/r).")
    out = mail.render(context(Lead("ann@acme.test", first_name="Ann")))
    assert out.subject == "Hi Ann"
    assert "<strong>Ann</strong>" in out.html
    assert 'style="' in out.html and "<p style=" in out.html  # CSS inlined into the tags
    assert "https://mail.acme.example/u/TOKEN" in out.html  # footer from templates/
    assert "Hello Ann, see the report (https://acme.example/r)." in out.text
    assert "1200 Harbor Street" in out.text and "<" not in out.text.split("--")[0]


def test_defaults_apply_to_missing_and_empty_fields() -> None:
    mail = compile_md("Hello {{ lead.first_name | default('there') }} at "
                      "{{ lead.company | default('your team') }}.")
    out = mail.render(context(Lead("x@acme.test", first_name="", company=None)))
    assert "Hello there at your team." in out.text
    assert out.subject == "Hi there"


def test_a_missing_field_without_default_is_an_error_naming_file_and_line() -> None:
    mail = compile_md("line one\n\nHello {{ lead.nickname }}!", name="campaigns/t/02.md")
    with pytest.raises(TemplateError) as info:
        mail.render(context(Lead("x@acme.test")))
    assert info.value.template == "campaigns/t/02.md"
    assert info.value.line == 6  # ---, subject, ---, line one, blank, Hello
    assert "nickname" in str(info.value)


@pytest.mark.parametrize("attack", [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__ }}",
    "{{ lead.__class__ }}",
    "{{ lipsum.__globals__['os'] }}",
    "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
])
def test_templates_cannot_reach_python_internals(attack: str) -> None:
    mail = compile_md(f"x {attack} y")
    with pytest.raises(TemplateError) as info:
        mail.render(context(Lead("x@acme.test")))
    assert "allowed" in str(info.value) or "undefined" in str(info.value)


def test_lead_html_is_escaped_in_the_html_part_and_kept_in_the_text_part() -> None:
    mail = compile_md("Hi {{ lead.company }}")
    out = mail.render(context(Lead("x@acme.test", company="<b>Evil & Co</b>")))
    assert "&lt;b&gt;Evil &amp; Co&lt;/b&gt;" in out.html
    assert "<b>Evil & Co</b>" in out.text


def test_syntax_errors_name_the_line() -> None:
    with pytest.raises(TemplateError) as info:
        compile_md("ok\n{% if lead.first_name %}\nunclosed")
    assert info.value.line >= 5 and "endif" in info.value.reason


def factory_and_campaign(tmp_path: Path, subject: str = "Hello {{ lead.first_name | default('you') }}"):
    settings = load_settings(REPO / "config" / "nurture.toml", environ={
        "NURTURE_HTTP__PUBLIC_URL": "https://mail.acme.example"})
    renderer = Renderer(LAYOUTS)
    mails = {"one": renderer.compile("c/one.md", f"---\nsubject: \"{subject}\"\n---\nBody\n")}
    camp = Campaign("t", "c", "T", "sequence", "Dana at Acme <dana@acme.example>",
                    reply_to="sales@acme.example", steps=(Step("one", 0, 1, template="one.md"),),
                    mails=mails)
    return MailFactory(settings, b"k" * 32, "abcd1234"), camp


def test_headers_the_spec_asks_for(tmp_path: Path) -> None:
    factory, camp = factory_and_campaign(tmp_path)
    lead = Lead("ann@acme.test", id=42, first_name="Ann", last_name="Ärger")
    envelope, subject = factory.build(camp, TouchPlan(camp.steps[0], "email"), lead, 7, NOW)
    msg = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert msg["Message-ID"] == f"<{tokens.message_id(7, 'one', 'acme.example', 'abcd1234', b'k' * 32)}>"
    assert msg["Message-ID"].startswith("<nurture.7.one.abcd1234.")
    assert msg["From"] == "Dana at Acme <dana@acme.example>"
    assert msg["Reply-To"] == "sales@acme.example"
    assert msg["To"].addresses[0].display_name == "Ann Ärger"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    raw = envelope.data.decode("ascii")
    unsub = next(line for line in raw.split("\r\n") if line.startswith("List-Unsubscribe:"))
    token = tokens.make_unsubscribe_token(b"k" * 32, 42, "t")
    assert unsub == (f"List-Unsubscribe: <https://mail.acme.example/u/{token}>, "
                     f"<mailto:unsubscribe+{token}@acme.example?subject=unsubscribe>")
    assert "=?" not in unsub  # never RFC 2047-encoded
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert tokens.read_unsubscribe_token(b"k" * 32, token) == (42, "t")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8"), max_size=300))
def test_no_lead_value_can_add_a_header(tmp_path_factory: pytest.TempPathFactory, value: str) -> None:
    # Given a lead whose name and company hold anything at all (CR, LF, NUL, RTL marks...)
    factory, camp = factory_and_campaign(tmp_path_factory.getbasetemp(),
                                         subject="{{ lead.company | default('x') }} news")
    lead = Lead("ann@acme.test", id=1, first_name=value, last_name=value, company=value)
    # When the mail is built
    envelope, _ = factory.build(camp, TouchPlan(camp.steps[0], "email"), lead, 1, NOW)
    # Then the header block has exactly the headers we wrote, each parseable
    head = envelope.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0] for line in head.split("\r\n") if not line[:1].isspace()]
    assert names == ["From", "To", "Reply-To", "Subject", "Date", "Message-ID", "List-Unsubscribe",
                     "List-Unsubscribe-Post", "X-Nurture-Campaign", "MIME-Version",
                     "Content-Type"]
    msg = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert not msg.defects


def test_threaded_steps_reply_to_the_previous_mail(tmp_path: Path) -> None:
    from worker.domain.sequence import PriorTouch
    factory, camp = factory_and_campaign(tmp_path)
    parent = PriorTouch("zero", "email", "accepted", "nurture.7.zero@acme.example", "Your report",
                        NOW)
    touch = TouchPlan(camp.steps[0], "email", thread_parent=parent,
                      references=("nurture.7.intro@acme.example", parent.message_id))
    envelope, subject = factory.build(camp, touch, Lead("ann@acme.test", id=1), 7, NOW)
    msg = email.message_from_bytes(envelope.data, policy=email.policy.default)
    assert subject == "Re: Your report" and msg["Subject"] == "Re: Your report"
    assert msg["In-Reply-To"] == "<nurture.7.zero@acme.example>"
    assert msg["References"] == "<nurture.7.intro@acme.example> <nurture.7.zero@acme.example>"


def test_attachments_are_base64_parts(tmp_path: Path) -> None:
    att = mime.prepare_attachment("report.pdf", b"%PDF-1.4 fake" * 100, "application/pdf")
    data = mime.build_message([("Subject", "x")], "text", "<p>html</p>", (att,))
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    parts = list(msg.iter_attachments())
    assert parts[0].get_filename() == "report.pdf"
    assert parts[0].get_content() == b"%PDF-1.4 fake" * 100


def test_forged_altered_and_truncated_tokens_are_refused() -> None:
    key = b"secret"
    token = tokens.make_unsubscribe_token(key, 5, "new-lead")
    assert tokens.read_unsubscribe_token(key, token) == (5, "new-lead")
    body, sig = token.split(".")
    forged = tokens.make_unsubscribe_token(b"other", 5, "new-lead")
    other_lead = tokens.make_unsubscribe_token(key, 6, "new-lead").split(".")[0] + "." + sig
    for bad in (forged, other_lead, token[:-1], token[:-3] + "AAA", body, "", "x.y", token + "A"):
        assert tokens.read_unsubscribe_token(key, bad) is None
