"""Shared pieces of the bad-input suites: nasty text, the command line in-process, and a
workspace (SQLite, campaigns, the shipped templates) that lives for a whole module.

Hypothesis runs each test body many times, so the workspaces here are built once per module
and every example keeps to addresses of its own (``fresh_domain``).
"""

from __future__ import annotations

import contextlib
import io
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.workspace import REPO, env_for, make_app
from worker.app import App
from worker.cli import main

#: Characters that break naive parsers and header writers: bidi controls, BOMs, Unicode line
#: and paragraph separators, NEL, vertical tab, form feed, file separators, delimiters,
#: quotes of the other kind, markup, Jinja and RFC 2047 look-alikes.
NASTY = ["\u200f", "\u200e", "\u202e", "\u2066", "\ufeff", "\u2028", "\u2029", "\x85", "\x0b",
         "\x0c", "\x1c", "\x1e", "\t", ",", ";", "|", "'", "`", " ", "\u00a0", "\u3000", "é",
         "Ä", "日本語", "שלום", "🙂", "\U0001f469\u200d\U0001f4bb", "=?utf-8?q?x?=", "{{ 7*7 }}",
         "{% raw %}", "<b>", "&amp;", "</html>", "\\", "%s", "${x}", "\u0301", "\uffff"]
#: CR, LF and NUL: refused in every lead field (SPEC: Leads).
CONTROL = ["\r", "\n", "\r\n", "\x00"]
#: Other C0 and C1 controls (not TAB), refused in lead fields since issue 12 item 6: the ones
#: generated inside values (whitespace controls such as VT or NEL are stripped at the ends).
TERMINAL = ["\x1b", "\x1b[2J", "\x07", "\x9b", "\x7f", "\x01", "\x08"]
#: Every refused control character, for ``exclude=`` in generators of good values.
CONTROLS = "".join(chr(c) for c in [*range(0x00, 0x09), *range(0x0a, 0x20),
                                    *range(0x7f, 0xa0)])
PLACEHOLDER = "\ue000"  # never generated; marks where invalid UTF-8 bytes go


def text_piece(exclude: str = "") -> st.SearchStrategy[str]:
    """Arbitrary text without surrogates and without ``exclude``, or one nasty fragment."""
    banned = exclude + PLACEHOLDER
    plain = st.text(alphabet=st.characters(codec="utf-8", blacklist_characters=banned),
                    max_size=20)
    return st.one_of(plain, st.sampled_from([n for n in NASTY if not set(n) & set(banned)]))


def nasty_text(exclude: str = "", max_pieces: int = 6) -> st.SearchStrategy[str]:
    return st.lists(text_piece(exclude), max_size=max_pieces).map("".join)


def examples(count: int) -> settings:
    """Hypothesis settings for ``count`` examples, times ``BAD_INPUT_SCALE`` (default 1) for a
    deeper run; no deadline, no health checks: each example runs real commands on a database."""
    scale = float(os.environ.get("BAD_INPUT_SCALE", "1") or 1)
    return settings(max_examples=max(int(count * scale), 1), deadline=None,
                    suppress_health_check=list(HealthCheck))


_domains = itertools.count()


def fresh_domain() -> str:
    """A domain no earlier example used, so each example's leads are new."""
    return f"d{next(_domains):07d}-{os.getpid()}.test"


@dataclass
class Cli:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        # Split on LF only: reasons may quote values holding other line breaks (U+2028...).
        return self.out.rstrip("\n").split("\n") if self.out else []


def run_cli(*args: str) -> Cli:
    """``nurture ARGS`` in this process; stdout and stderr captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return Cli(code, out.getvalue(), err.getvalue())


@dataclass
class Workspace:
    tmp: Path
    app: App


@contextlib.contextmanager
def workspace(tmp: Path, **env: str) -> Iterator[Workspace]:
    """A migrated SQLite workspace whose ``NURTURE_*`` variables are set while it is open."""
    app = make_app(tmp, **env)
    variables = {**env_for(tmp, **env), "NURTURE_CONFIG": str(REPO / "config" / "nurture.toml"),
                 "NURTURE_LOGGING__LEVEL": "ERROR"}
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("NURTURE_")]:
            patch.delenv(key)
        for key, value in variables.items():
            patch.setenv(key, value)
        patch.chdir(tmp)
        yield Workspace(tmp, app)
    app.db.engine.dispose()
