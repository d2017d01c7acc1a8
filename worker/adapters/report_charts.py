"""Charts for the HTML report, drawn by matplotlib and returned as inline ``<svg>`` text.

Only the object-oriented API (``Figure``) is used, so nothing global is touched besides
choosing the Agg backend; text stays text (``svg.fonttype = none``) so the page is light and
searchable, and ids are prefixed per chart so several SVGs can share one page.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any

import matplotlib

matplotlib.use("Agg")

BLUE, GREEN, GREY, ORANGE = "#2b6cb0", "#2f855a", "#a0aec0", "#dd6b20"
_counter = itertools.count(1)
_ID_RE = re.compile(r'id="([^"]+)"')


def _figure(width: float = 5.6, height: float = 3.0) -> Any:
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _svg(fig: Any) -> str:
    """The figure as an ``<svg>`` element with ids unique on the page."""
    from matplotlib import rc_context
    buf = io.StringIO()
    with rc_context({"svg.fonttype": "none", "svg.hashsalt": "nurture"}):
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    prefix = f"c{next(_counter)}-"
    ids = set(_ID_RE.findall(text))
    for old in sorted(ids, key=len, reverse=True):
        text = text.replace(f'id="{old}"', f'id="{prefix}{old}"')
        text = text.replace(f"#{old})", f"#{prefix}{old})")
        text = text.replace(f'href="#{old}"', f'href="#{prefix}{old}"')
    return text.replace("<svg ", '<svg class="chart" role="img" ', 1)


def _integers() -> Any:
    from matplotlib.ticker import MaxNLocator
    return MaxNLocator(integer=True)


def _tidy(ax: Any, title: str) -> None:
    ax.set_title(title, loc="left", fontsize=11, fontweight="bold")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _empty(ax: Any, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", color=GREY, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def funnel(counts: dict[str, int]) -> str:
    """Enrolled, touched, replied, completed, newsletter: one horizontal bar each."""
    fig = _figure()
    ax = fig.add_subplot()
    labels = ["enrolled", "touched", "replied", "completed", "newsletter"]
    values = [counts.get(k, 0) for k in labels]
    colors = [BLUE, BLUE, GREEN, GREY, ORANGE]
    bars = ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    top = max(values) or 1
    for bar, value in zip(bars, values[::-1], strict=True):
        ax.text(bar.get_width() + top * 0.01, bar.get_y() + bar.get_height() / 2, str(value),
                va="center", fontsize=9)
    ax.set_xlim(0, top * 1.15)
    ax.xaxis.set_major_locator(_integers())
    _tidy(ax, "Funnel")
    return _svg(fig)


def replies_by_touch(counts: dict[str, int]) -> str:
    """Human replies by the number of the email they answered."""
    fig = _figure()
    ax = fig.add_subplot()
    _tidy(ax, "Replies by touch number")
    if not counts or not any(counts.values()):
        _empty(ax, "no replies yet")
        return _svg(fig)
    numbers = [int(k) for k in counts]
    bars = ax.bar(numbers, list(counts.values()), color=GREEN, width=0.6)
    ax.set_xticks(numbers, [str(n) for n in numbers])
    ax.set_xlim(0.4, max(max(numbers), 5) + 0.6)  # one bar is not a wall
    ax.bar_label(bars, fontsize=9)
    ax.set_xlabel("touch number (1 = first email)", fontsize=9)
    ax.set_ylabel("replies", fontsize=9)
    ax.yaxis.set_major_locator(_integers())
    return _svg(fig)


def reply_rate(steps: Sequence[dict[str, Any]]) -> str:
    """Reply rate per email step, with replied / sent on each bar."""
    fig = _figure()
    ax = fig.add_subplot()
    _tidy(ax, "Reply rate per step")
    emails = [s for s in steps if s["kind"] == "email"]
    if not emails:
        _empty(ax, "no email steps")
        return _svg(fig)
    rates = [s["reply_rate"] * 100 for s in emails]
    positions = list(range(len(emails)))
    bars = ax.bar(positions, rates, color=BLUE, width=0.6)
    ax.set_xlim(-0.6, max(len(positions), 3) - 0.4)
    ax.set_xticks(positions, [s["step"] for s in emails])
    ax.bar_label(bars, labels=[f"{s['replied']}/{s['sent']}" for s in emails], fontsize=9)
    ax.set_ylabel("% of mails sent", fontsize=9)
    ax.set_ylim(0, max(max(rates) * 1.2, 10))
    ax.tick_params(axis="x", labelrotation=20 if len(emails) > 4 else 0)
    return _svg(fig)


#: One colour per intent (issue 14), in ``worker.domain.intent.INTENTS`` order.
INTENT_COLOURS = {"interested": GREEN, "not_now": ORANGE, "not_interested": "#c53030",
                  "referral": BLUE, "wrong_person": "#805ad5", "neutral": GREY}


def replies_by_intent(steps: Sequence[dict[str, Any]]) -> str:
    """Human replies per email step, stacked by the reply's intent."""
    fig = _figure()
    ax = fig.add_subplot()
    _tidy(ax, "Replies by intent per step")
    emails = [s for s in steps if s["kind"] == "email"]
    if not any(sum(s.get("intents", {}).values()) for s in emails):
        _empty(ax, "no replies yet")
        return _svg(fig)
    positions = list(range(len(emails)))
    bottom = [0] * len(emails)
    for intent, colour in INTENT_COLOURS.items():
        counts = [s.get("intents", {}).get(intent, 0) for s in emails]
        if any(counts):
            ax.bar(positions, counts, bottom=bottom, color=colour, width=0.6,
                   label=intent.replace("_", " "))
            bottom = [b + c for b, c in zip(bottom, counts, strict=True)]
    ax.set_xlim(-0.6, max(len(positions), 3) - 0.4)
    ax.set_xticks(positions, [s["step"] for s in emails])
    ax.yaxis.set_major_locator(_integers())
    ax.set_ylabel("replies", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    ax.tick_params(axis="x", labelrotation=20 if len(emails) > 4 else 0)
    return _svg(fig)


def _daily(days: Sequence[dict[str, Any]]) -> tuple[list[date], list[int], list[int]]:
    """Every day from the first to the last, quiet days as zeros (a line between two busy
    days would otherwise suggest sends that never happened)."""
    by_day = {date.fromisoformat(d["day"]): d for d in days}
    first, last = min(by_day), max(by_day)
    span = (last - first).days
    xs = [first + timedelta(days=n) for n in range(span + 1)] if span <= 3660 else sorted(by_day)
    return (xs, [by_day[x]["sent"] if x in by_day else 0 for x in xs],
            [by_day[x]["replied"] if x in by_day else 0 for x in xs])


def per_day(days: Sequence[dict[str, Any]]) -> str:
    """Sends and human replies per day (UTC)."""
    fig = _figure()
    ax = fig.add_subplot()
    _tidy(ax, "Sends and replies per day")
    if not days:
        _empty(ax, "nothing sent yet")
        return _svg(fig)
    xs, sent, replied = _daily(days)
    ax.plot(xs, sent, marker="o" if len(xs) < 60 else None, color=BLUE, label="sent")
    ax.plot(xs, replied, marker="o" if len(xs) < 60 else None, color=GREEN, label="replies")
    ax.legend(fontsize=9, frameon=False)
    ax.set_ylim(bottom=0, top=max(max(sent), max(replied), 1) * 1.15)
    if len(xs) == 1:
        ax.set_xlim(xs[0] - timedelta(days=3), xs[0] + timedelta(days=3))
    ax.yaxis.set_major_locator(_integers())
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    locator = AutoDateLocator(maxticks=10)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    return _svg(fig)
