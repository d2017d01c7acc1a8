"""Campaign + Lead + Step -> the subject, HTML and text of one mail (sandboxed Jinja).

Everything expensive happens once, when a template is compiled: Markdown is converted, the
shared layout is wrapped around the body, CSS is inlined and the plain-text part is generated.
Jinja expressions are swapped for inert tokens while that happens and put back afterwards, so
what is left for each send is three renders of precompiled templates.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import css_inline
import html2text
import jinja2
import yaml
from markdown_it import MarkdownIt

from worker.domain.sandbox import SandboxLimit, deadline
from worker.domain.sandbox_env import BoundedSandbox
from worker.errors import LimitError, TemplateError

_JINJA_RE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_TOKEN_RE = re.compile(r"XJNJ(\d{5})X")
_INCLUDE_RE = re.compile(r"\{%-?\s*include\s+[\"']([^\"']+)[\"']\s*-?%\}")
_CONTENT_RE = re.compile(r"\{\{\s*content\s*\}\}")
_MD_LINK_RE = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")
def _nested_loop_line(ast: jinja2.nodes.Template) -> int:
    """The line of a loop inside another loop (refused: its cost multiplies), else 0."""
    for outer in ast.find_all(jinja2.nodes.For):
        for inner in outer.find_all(jinja2.nodes.For):
            if inner is not outer:
                return inner.lineno
    return 0


class _Tokens:
    """Swap Jinja spans for inert tokens and back."""

    def __init__(self) -> None:
        self.spans: list[str] = []

    def protect(self, source: str) -> str:
        def swap(match: re.Match[str]) -> str:
            self.spans.append(match.group(0))
            return f"XJNJ{len(self.spans) - 1:05d}X"
        return _JINJA_RE.sub(swap, source)

    def restore(self, text: str) -> str:
        return _TOKEN_RE.sub(lambda m: self.spans[int(m.group(1))], text)


def split_front_matter(source: str, name: str) -> tuple[dict[str, Any], str, int]:
    """Split ``---`` YAML front matter from a template. Returns (front, body, body_line) where
    ``body`` keeps blank lines in place of the front matter so Jinja line numbers match the file."""
    lines = source.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return {}, source, 1
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            break
    else:
        raise TemplateError(name, 1, "front matter is not closed by a '---' line")
    try:
        front = yaml.safe_load("".join(lines[1:index])) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = (mark.line + 2) if mark is not None else 1
        raise TemplateError(name, line, f"front matter is not valid YAML: "
                            f"{getattr(exc, 'problem', exc)}") from None
    if not isinstance(front, dict):
        raise TemplateError(name, 2, "front matter must be 'key: value' lines")
    body = "\n" * (index + 1) + "".join(lines[index + 1:])
    return front, body, index + 2


def front_matter_line(source: str, key: str) -> int:
    """The file line of a front-matter key (1 if not found)."""
    for number, line in enumerate(source.splitlines(), start=1):
        if re.match(rf"\s*{re.escape(key)}\s*:", line):
            return number
    return 1


@dataclass(frozen=True)
class Rendered:
    subject: str
    preheader: str
    html: str
    text: str


@dataclass
class CompiledMail:
    """One step's or issue's templates, ready to render for any lead."""

    name: str
    front: dict[str, Any]
    source: str
    subject: jinja2.Template
    preheader: jinja2.Template | None
    html: jinja2.Template
    text: jinja2.Template
    raw_body: jinja2.Template
    links: list[str] = field(default_factory=list)

    def render(self, context: Mapping[str, Any]) -> Rendered:
        """Render for one lead. Raises TemplateError naming the template file and line
        (LimitError when a sandbox limit was reached)."""
        try:
            with deadline():
                return self._render(context)
        except jinja2.TemplateError as exc:
            raise self._locate(exc, context) from None
        except (TypeError, ValueError, ArithmeticError, RecursionError, MemoryError) as exc:
            raise self._locate(exc, context) from None

    def _render(self, context: Mapping[str, Any]) -> Rendered:
        subject = " ".join(self.subject.render(context).split())
        pre = " ".join(self.preheader.render(context).split()) if self.preheader else ""
        ctx = dict(context, preheader=pre, subject=subject)
        return Rendered(subject, pre, self.html.render(ctx), self.text.render(ctx))

    def _locate(self, exc: Exception, context: Mapping[str, Any]) -> TemplateError:
        """Re-render the untransformed body so the error carries the file's own line."""
        line = _template_line(exc.__traceback__, self.name)
        try:
            with deadline():
                self.raw_body.render(dict(context, preheader="", subject=""))
        except (Exception, RecursionError, MemoryError) as raw_exc:  # noqa: BLE001 - any template failure
            line = _template_line(raw_exc.__traceback__, self.name) or line
        if not line:
            line = front_matter_line(self.source, "subject")
        limit = isinstance(exc, (SandboxLimit, RecursionError, MemoryError))
        return (LimitError if limit else TemplateError)(self.name, line or 1, _describe(exc))


def _describe(exc: Exception) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        msg = str(exc).replace("'dict object' has no attribute", "lead field is missing:")
        return f"{msg} (give a default, e.g. {{{{ lead.first_name | default('there') }}}})"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in a template: {exc}"
    return str(exc) or exc.__class__.__name__


def _template_line(tb: TracebackType | None, name: str) -> int:
    line = 0
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == name:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class Renderer:
    """Compiles templates against the shared layouts in ``templates/``."""

    def __init__(self, layouts: Mapping[str, str]) -> None:
        self.layouts = dict(layouts)
        self.html_env = self._env(autoescape=True)
        self.text_env = self._env(autoescape=False)
        self.expr_env = BoundedSandbox(undefined=jinja2.ChainableUndefined)
        self._markdown = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])
        self._inliner = css_inline.CSSInliner(keep_style_tags=True, load_remote_stylesheets=False)

    @staticmethod
    def _env(autoescape: bool) -> BoundedSandbox:
        return BoundedSandbox(undefined=jinja2.StrictUndefined, autoescape=autoescape,
                              keep_trailing_newline=True)

    def compile(self, name: str, source: str, layout: str = "layout") -> CompiledMail:
        """Compile a step or issue file. Raises TemplateError with the file's line."""
        front, body, _ = split_front_matter(source, name)
        subject_src = front.get("subject")
        if not isinstance(subject_src, str) or not subject_src.strip():
            raise TemplateError(name, 1, "front matter needs a 'subject'")
        pre_src = front.get("preheader")
        subject = self._compile_expr_template(subject_src, name, front_matter_line(source, "subject"))
        preheader = (self._compile_expr_template(str(pre_src), name,
                                                 front_matter_line(source, "preheader"))
                     if pre_src is not None else None)
        raw_body = self._compile(self.html_env, body, name, 0)
        tokens = _Tokens()
        protected = tokens.protect(body)
        if name.endswith(".md"):
            body_html = self._markdown.render(protected)
        else:
            body_html = protected
        html_layout = self._layout(f"{layout}.html", name)
        text_layout = self._layout(f"{layout}.txt", name)
        parts = _CONTENT_RE.split(html_layout, maxsplit=1)
        if len(parts) != 2:
            raise TemplateError(name, 1, f"templates/{layout}.html has no {{{{ content }}}}")
        doc = tokens.protect(parts[0]) + body_html + tokens.protect(parts[1])
        try:
            inlined = self._inliner.inline(doc)
        except ValueError as exc:
            raise TemplateError(name, 1, f"CSS could not be inlined: {exc}") from None
        html_src = tokens.restore(inlined)
        text_body = tokens.restore(_to_text(body_html))
        text_src = _CONTENT_RE.sub(lambda _: text_body, text_layout, count=1)
        html = self._compile(self.html_env, html_src, name, 0)
        text = self._compile(self.text_env, text_src, name, 0)
        links = re.findall(r"""href\s*=\s*["']([^"']*)["']""", tokens.restore(body_html))
        return CompiledMail(name, front, source, subject, preheader, html, text, raw_body, links)

    def _compile_expr_template(self, src: str, name: str, line: int) -> jinja2.Template:
        return self._compile(self.text_env, "\n" * (line - 1) + src, name, 0)

    def _compile(self, env: jinja2.Environment, src: str, name: str, offset: int) -> jinja2.Template:
        try:
            nested = _nested_loop_line(env.parse(src, name=name, filename=name))
            if nested:
                raise TemplateError(name, nested + offset, "a loop inside a loop is not allowed "
                                    "in a campaign template")
            code = env.compile(src, name=name, filename=name)
            return env.template_class.from_code(env, code, env.make_globals(None))
        except jinja2.TemplateSyntaxError as exc:
            line = exc.lineno or 1
            if "Unexpected end of template" in (exc.message or ""):
                line = _unclosed_block_line(src) or line
            raise TemplateError(name, line + offset, exc.message or str(exc)) from None

    def _layout(self, name: str, user: str, depth: int = 0) -> str:
        if name not in self.layouts:
            raise TemplateError(user, 1, f"layout templates/{name} is missing")
        source = self.layouts[name]
        if depth > 5:
            raise TemplateError(f"templates/{name}", 1, "includes nest too deeply")
        return _INCLUDE_RE.sub(lambda m: self._layout(m.group(1), f"templates/{name}", depth + 1),
                               source)

    def compile_condition(self, expr: str, name: str, line: int) -> Callable[[Mapping[str, Any]],
                                                                              bool]:
        """Compile a ``when`` or ``enroll_when`` expression. Raises TemplateError, and
        LimitError when it goes past a limit even without a lead (``7 ** 10**8 > 0``)."""
        try:
            compiled = self.expr_env.compile_expression(expr, undefined_to_none=True)
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(name, line, f"bad expression {expr!r}: {exc.message}") from None

        def evaluate(context: Mapping[str, Any]) -> bool:
            """True if the condition holds; raises LimitError past a sandbox limit."""
            try:
                with deadline():
                    return bool(compiled(**context))
            except (SandboxLimit, RecursionError, MemoryError) as exc:
                raise LimitError(name, line, f"{expr!r}: {_describe(exc)}") from None
            except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError):
                return False  # a condition over a missing or odd field is simply not met

        evaluate({})  # a limit that does not depend on the lead is found when the file is read
        return evaluate


_BLOCK_TAG_RE = re.compile(r"\{%-?\s*(\w+)")
_OPENERS = {"if", "for", "macro", "call", "filter", "block", "with", "raw", "autoescape", "trans"}


def _unclosed_block_line(source: str) -> int:
    """The line of the innermost block tag left open (Jinja reports the end of the file)."""
    stack: list[int] = []
    for match in _BLOCK_TAG_RE.finditer(source):
        tag = match.group(1)
        line = source.count("\n", 0, match.start()) + 1
        if tag in _OPENERS:
            stack.append(line)
        elif tag.startswith("end") and stack:
            stack.pop()
    return stack[-1] if stack else 0


def _to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.unicode_snob = True
    converter.ignore_emphasis = True
    text = converter.handle(html)
    text = _MD_LINK_RE.sub(lambda m: m.group(2) if m.group(1) == m.group(2)
                           else f"{m.group(1)} ({m.group(2)})", text)
    return text.strip() + "\n"
