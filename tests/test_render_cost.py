"""The per-mail render stays substitution and MIME assembly: every shipped step renders the
same through the bounded filters as through Jinja's own, and a lead field costs a handful of
Python calls, not an argument binding per filter (issue 13: the send path keeps up)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import jinja2
from hypothesis import given, settings
from hypothesis import strategies as st

from bench._realistic import template as realistic_step
from tests.workspace import REPO
from worker.adapters.campaign_folders import load_catalog, read_layouts
from worker.domain import mime
from worker.domain.model import Lead
from worker.domain.render import Renderer

LEAD = Lead("zoe@example.com", id=7, first_name="Zoë", last_name="O'Neil",
            company="Bench & Co <b>", title="Head of Sales")


def context(slug: str, step: str) -> dict[str, object]:
    return {"lead": LEAD.template_view(), "campaign": {"name": slug.title(), "slug": slug},
            "step": {"id": step}, "sender": {"name": "Dana", "email": "dana@acme.example"},
            "unsubscribe_url": "https://mail.acme.example/u/TOKEN",
            "unsubscribe_mailto": "mailto:unsubscribe+TOKEN@acme.example"}


def stock_filters(renderer: Renderer) -> Renderer:
    """The same renderer with Jinja's own filters instead of the bounded ones."""
    for env in (renderer.html_env, renderer.text_env, renderer.expr_env):
        env.filters = dict(jinja2.filters.FILTERS)
    return renderer


def old_encode_body(text: str) -> tuple[str, bytes]:
    normalised = text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", mime.CRLF)
    if normalised.isascii() and all(len(line) < 990 for line in normalised.split(mime.CRLF)):
        return "7bit", normalised.encode("ascii")
    return "quoted-printable", mime.binascii.b2a_qp(normalised.encode("utf-8"), istext=True)


def test_every_shipped_step_renders_the_same_through_the_bounded_filters() -> None:
    catalog = load_catalog(REPO / "campaigns", REPO / "templates")
    reference = stock_filters(Renderer(read_layouts(REPO / "templates")))
    compared = 0
    assert not catalog.problems
    for slug, campaign in catalog.campaigns.items():
        for step, mail in campaign.mails.items():
            plain = reference.compile(mail.name, mail.source, campaign.layout)
            got, want = mail.render(context(slug, step)), plain.render(context(slug, step))
            assert got == want, f"{slug}/{step}"
            for part in (got.html, got.text, got.html + "x" * 1200 + "\n", "é\n"):
                assert mime._encode_body(part) == old_encode_body(part)
            compared += 1
    assert compared >= 10  # every shipped campaign has steps


def calls(render: Callable[[], Any]) -> int:
    count = 0

    def profile(frame: FrameType, event: str, arg: object) -> None:
        nonlocal count
        if event == "call":
            count += 1

    sys.setprofile(profile)
    try:
        render()
    finally:
        sys.setprofile(None)
    return count


def test_a_lead_field_costs_a_few_python_calls_per_mail() -> None:
    """Counted calls, not time: the realistic 4 KB step has 14 ``default`` filters in its
    HTML and text parts; binding each filter's arguments took some 35 calls apiece."""
    mail = Renderer(read_layouts(REPO / "templates")).compile("campaigns/b/one.md",
                                                              realistic_step())
    ctx = context("b", "one")
    fields = realistic_step().count("| default")
    mail.render(ctx)  # warm caches
    per_mail = calls(lambda: mail.render(ctx))
    assert per_mail < 80 * fields, per_mail  # 125 a field with the binding, 49 without


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(["a", " ", "\t", ".", "=", "é", "·", "\n", "\r", "\r\n",
                                 "x" * 80, "y" * 73, "From "]), max_size=14))
def test_quoted_printable_a_line_at_a_time_is_the_whole_texts_encoding(parts: list[str]) -> None:
    text = "".join(parts)
    assert mime._encode_body(text) == old_encode_body(text)
    assert mime._encode_body(text) == old_encode_body(text)  # from the remembered lines too


def test_a_shared_layout_line_is_encoded_once() -> None:
    """The layout's lines (with a non-ASCII character, so quoted-printable) are encoded for
    the first mail and remembered for the next ones."""
    mime._QP_LINES.clear()
    layout = "<p style=\"color: #123\">· footer ·</p>\n" * 50
    mime._encode_body(f"Hi Ann\n{layout}")
    remembered = dict(mime._QP_LINES)
    mime._encode_body(f"Hi Bob\n{layout}")
    assert len(mime._QP_LINES) == len(remembered) + 1  # only Bob's line is new
