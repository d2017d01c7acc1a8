"""The limits a campaign template or ``when`` runs under: a Jinja sandbox that refuses to
build anything huge and stops a render that runs too long.

Python does the expensive parts in single C calls that no signal interrupts (``7 ** 10**8``,
``'%0300000000d' % 1``, ``s.center(10**9)``), so every such operation is checked on its
operands *before* it runs, and refused if its result would be over a limit. Whatever runs in
Python (loops, macros, attribute reads) passes through a hook that checks the deadline, so a
render ends within about ``RENDER_TIMEOUT_S`` wherever it runs.
"""

from __future__ import annotations

import re
import string
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

MAX_SIZE = 1_000_000       # characters of a string / items of a list / characters of a render
MAX_INT_BITS = 4096        # about 1,200 decimal digits
MAX_RANGE = 1000
MAX_DEPTH = 25             # nested macro calls (and recursive loops)
RENDER_TIMEOUT_S = 3.0     # one render of one part (subject, HTML, text) or one `when`
MAX_PRODUCED = 5 * MAX_SIZE  # all the {{ }} outputs of one render, kept or not
_UNKNOWN = 16              # what an object of another type counts for
_state = threading.local()
_PERCENT_RE = re.compile(r"%(?:\(([^)]*)\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)")


class SandboxLimit(SecurityError):
    """A template or condition went past one of the limits above."""


@contextmanager
def deadline(seconds: float = RENDER_TIMEOUT_S) -> Iterator[None]:
    """Run a render under a fresh deadline and macro depth (restored after: renders nest
    when an error is located)."""
    saved = (getattr(_state, "deadline", None), getattr(_state, "depth", 0),
             getattr(_state, "produced", 0))
    _state.deadline, _state.depth, _state.produced = time.monotonic() + seconds, 0, 0
    try:
        yield
    finally:
        _state.deadline, _state.depth, _state.produced = saved


def produced(size: int) -> None:
    """Count an expression's output; a macro's output is kept in a list until it is joined,
    so a loop of big outputs is stopped here before the list holds gigabytes."""
    _state.produced = getattr(_state, "produced", 0) + size
    refuse_over(_state.produced, "the output of all expressions", MAX_PRODUCED)


@contextmanager
def nested() -> Iterator[None]:
    """One more macro call deep; refused past MAX_DEPTH."""
    _state.depth = getattr(_state, "depth", 0) + 1
    try:
        if _state.depth > MAX_DEPTH:
            raise SandboxLimit(f"macros nest over {MAX_DEPTH} deep")
        yield
    finally:
        _state.depth -= 1


def tick() -> None:
    """Raise SandboxLimit once the current render is past its deadline."""
    limit = getattr(_state, "deadline", None)
    if limit is not None and time.monotonic() > limit:
        raise SandboxLimit(f"rendering took over {RENDER_TIMEOUT_S:g} s")


def weight(obj: Any, budget: int = MAX_SIZE) -> int:
    """About how many characters ``str(obj)`` would take; stops counting once over
    ``budget``, so a list that repeats itself a billion times costs ``budget`` steps."""
    total, stack = 0, [obj]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, (str, bytes)):
            total += len(item) + 1
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 2
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 2 + len(item)
            stack.extend(item)
        elif isinstance(item, dict):
            total += 2 + 2 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, range):
            total += 8 * len(item)
        elif isinstance(item, Namespace):
            stack.append(dict(item._Namespace__attrs))
        else:
            total += _UNKNOWN
    return total


def refuse_over(size: int, what: str, limit: int = MAX_SIZE) -> None:
    """Raise SandboxLimit if ``size`` is over ``limit``."""
    if size > limit:
        raise SandboxLimit(f"{what} would be over {limit:,} characters or items")


def check_number(value: Any, what: str) -> int:
    """A width, count or precision argument, refused when over MAX_SIZE."""
    if isinstance(value, int) and value > MAX_SIZE:
        raise SandboxLimit(f"{what} {value:,} is over {MAX_SIZE:,}")
    return value if isinstance(value, int) else 0


def check_percent(fmt: str, args: Any) -> None:
    """``fmt % args``: every width and precision within limits, the result too."""
    size = len(fmt)
    values = list(args) if isinstance(args, tuple) else [args]
    for name, wide, precision, _ in _PERCENT_RE.findall(fmt):
        if "*" in (wide, precision):
            raise SandboxLimit("'*' widths are not allowed in a template")
        size += max(check_number(int(wide or 0), "width"), check_number(int(precision or 0), "precision"))
        if name and isinstance(args, dict):
            size += weight(args.get(name))
    size += sum(weight(v) for v in values if not isinstance(v, dict))
    refuse_over(size, "the result of %")


def check_format(fmt: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """``fmt.format(...)``: widths within limits; each field counted as the largest argument."""
    largest = max((weight(v) for v in (*args, *kwargs.values())), default=0)
    size = 0
    for literal, field, spec, _ in string.Formatter().parse(fmt):
        size += len(literal)
        if field is None:
            continue
        if spec and "{" in spec:
            raise SandboxLimit("nested format specifications are not allowed in a template")
        size += max([largest, *(check_number(int(n), "width") for n in re.findall(r"\d+", spec or ""))])
    refuse_over(size, "the result of format()")


def check_str_method(text: str, name: str, args: tuple[Any, ...]) -> None:
    """Refuse the str methods whose result can be much bigger than their inputs."""
    if name in ("center", "ljust", "rjust", "zfill") and args:
        check_number(args[0], "width")
    elif name == "expandtabs":
        refuse_over(len(text) * max(check_number(args[0] if args else 8, "tab size"), 1),
                    "the result of expandtabs()")
    elif name == "replace" and len(args) >= 2 and isinstance(args[0], str) \
            and isinstance(args[1], str):
        check_replace(text, args[0], args[1], args[2] if len(args) > 2 else -1)
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((weight(v) for v in args[0].values()), default=1)
        refuse_over(len(text) * longest, "the result of translate()")
    elif name in ("format", "format_map"):
        pass  # checked by the formatter wrapper (wrap_str_format)


def check_replace(text: str, old: str, new: str, count: Any = -1) -> None:
    """``text.replace(old, new, count)``: the result within limits."""
    if len(new) <= len(old):
        return
    hits = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    refuse_over(len(text) + hits * (len(new) - len(old)), "the result of replace()")


def check_join(separator: str, items: list[Any]) -> None:
    """``separator.join(items)``: the result within limits."""
    refuse_over(sum(weight(i) for i in items) + len(separator) * len(items), "the joined string")


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``left OP right`` if its result would be over a limit; before it runs."""
    ints = isinstance(left, int) and isinstance(right, int)
    if operator == "**":
        if isinstance(left, (str, bytes, list, tuple)):
            raise SandboxLimit("** on a string or list is not allowed in a template")
        if ints and right > 0 and abs(left) > 1 and \
                left.bit_length() * right > MAX_INT_BITS:
            raise SandboxLimit(f"the result of ** would be over {MAX_INT_BITS} bits")
    elif operator == "*":
        if ints:
            refuse_over(left.bit_length() + right.bit_length(), "the result of *", MAX_INT_BITS)
        for seq, count in ((left, right), (right, left)):
            if isinstance(count, int) and not isinstance(seq, (int, float)):
                refuse_over(weight(seq) * count, "the result of *")
    elif operator == "+" and not ints and not isinstance(left, float):
        refuse_over(weight(left) + weight(right), "the result of +")
    elif operator == "%" and isinstance(left, str):
        check_percent(left, right)
