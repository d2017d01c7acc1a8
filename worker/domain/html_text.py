"""HTML body -> plain text, keeping quoted blocks recognisable.

HTML-only replies put the quoted original inside ``<blockquote>`` or a client's quote
container (Gmail ``gmail_quote``, Yahoo ``yahoo_quoted``, Outlook ``divRplyFwdMsg``). Those
lines come out prefixed with ``> `` so the plain-text quote detection in
:mod:`worker.domain.reply_text` finds them. Uses the stdlib ``html.parser``: tolerant of
broken markup, no dependency, and fast enough for the capped input.
"""

from __future__ import annotations

import contextlib
from html.parser import HTMLParser

#: HTML characters converted at most; marketing mail can be megabytes of markup.
MAX_HTML_CHARS = 400_000

_BLOCK = {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol",
          "hr", "pre", "section", "article", "header", "footer", "dd", "dt", "center"}
_SKIP = {"script", "style", "head", "title", "noscript", "template", "svg"}
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "divrplyfwdmsg",
                  "protonmail_quote", "ms-outlook-quote", "zmail_extra", "quote")


class _Converter(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.lines: list[str] = []
        self.current: list[str] = []
        self.depth_at_line_start = 0
        self.quote_depth = 0
        self.skip_depth = 0
        self.stack: list[tuple[str, bool]] = []

    def _newline(self) -> None:
        line = "".join(self.current).strip()
        prefix = "> " * self.depth_at_line_start
        if not line:
            line = prefix.strip()  # an empty quoted line stays ">", an empty line ""
        elif prefix:
            line = prefix + line
        self.lines.append(line)
        self.current = []
        self.depth_at_line_start = self.quote_depth

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _SKIP:
            self.skip_depth += 1
            return
        css = " ".join((v or "") for k, v in attrs if k in ("class", "id")).lower()
        quoting = tag == "blockquote" or any(c in css for c in _QUOTE_CLASSES)
        if tag in _BLOCK or quoting:
            self._newline()
        if quoting:
            self.quote_depth += 1
            self.depth_at_line_start = self.quote_depth
        if tag not in ("br", "hr", "img", "meta", "link", "input"):
            self.stack.append((tag, quoting))

    def handle_endtag(self, tag: str) -> None:
        if tag in _SKIP:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        # Pop to the matching start tag; unclosed inner tags are closed with it.
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                closed = self.stack[i:]
                del self.stack[i:]
                if tag in _BLOCK or any(q for _, q in closed):
                    self._newline()
                self.quote_depth = max(0, self.quote_depth - sum(1 for _, q in closed if q))
                if not "".join(self.current).strip():
                    self.depth_at_line_start = self.quote_depth
                break

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if not "".join(self.current).strip():
            self.depth_at_line_start = self.quote_depth
        self.current.append(" ".join(data.split()) + (" " if data[-1:].isspace() else ""))


def html_to_text(html: str) -> str:
    """Readable text of an HTML body; quoted blocks become ``> `` lines. Never raises."""
    conv = _Converter()
    # html.parser is lenient; should it still give up, keep what was converted so far.
    with contextlib.suppress(Exception):
        conv.feed(html[:MAX_HTML_CHARS])
        conv.close()
    conv._newline()
    out: list[str] = []
    for line in conv.lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()
