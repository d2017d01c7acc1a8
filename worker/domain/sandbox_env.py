"""The Jinja environment campaign templates and conditions run in: the immutable sandbox
with the limits of ``sandbox`` applied to operators, calls, filters and output."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from functools import update_wrapper
from typing import Any

import jinja2
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import LoopContext, Macro
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker.domain import sandbox as limits
from worker.domain.sandbox import MAX_RANGE, SandboxLimit, refuse_over, tick, weight


def _check_filter(name: str, a: dict[str, Any]) -> None:
    """Refuse a filter call whose result would be over a limit, from its arguments.
    A filter checked here must be named in ``_CHECKED``."""
    if name == "center":
        limits.check_number(a["width"], "width")
    elif name == "indent" and isinstance(a["s"], str):
        lines = a["s"].count("\n") + 1
        pad = a["width"] if isinstance(a["width"], int) else len(str(a["width"]))
        refuse_over(len(a["s"]) + max(pad, 0) * lines, "the result of indent")
    elif name == "format" and isinstance(a["value"], str):
        limits.check_percent(a["value"], a["kwargs"] or a["args"])
    elif name == "replace" and all(isinstance(a[k], str) for k in ("s", "old", "new")):
        limits.check_replace(a["s"], a["old"], a["new"], a["count"] if a["count"] is not None
                             else -1)
    elif name == "join":
        a["value"] = list(a["value"])
        limits.check_join(str(a["d"]), a["value"])
    elif name == "batch":
        limits.check_number(a["linecount"], "batch size")
    elif name == "slice":
        limits.check_number(a["slices"], "number of slices")
    elif name == "sum" and not isinstance(a["start"], (int, float)):
        a["iterable"] = list(a["iterable"])
        refuse_over(weight(a["start"]) + sum(weight(i) for i in a["iterable"]),
                    "the result of sum")
    elif name == "wordwrap" and isinstance(a["s"], str) and len(a["wrapstring"] or "") > 1:
        refuse_over(len(a["s"]) * (1 + len(a["wrapstring"])), "the result of wordwrap")
    elif name == "tojson" and isinstance(a["indent"], int):
        refuse_over(weight(a["value"]) * (2 + max(a["indent"], 0)), "the result of tojson")


# The filters ``_check_filter`` looks at; the others need no argument binding (it cost a
# quarter of a mail's render: ``default`` runs for every lead field).
_CHECKED = frozenset({"center", "indent", "format", "replace", "join", "batch", "slice", "sum",
                      "wordwrap", "tojson"})


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    """``func`` with the deadline, its arguments checked before and its result after."""
    if name not in _CHECKED:
        def unchecked(*args: Any, **kwargs: Any) -> Any:
            tick()
            result = func(*args, **kwargs)
            refuse_over(weight(result), f"the result of |{name}")
            return result

        return update_wrapper(unchecked, func)  # keeps Jinja's pass_context/eval_context marks
    signature = inspect.signature(func)
    params = list(signature.parameters.values())
    if getattr(func, "jinja_pass_arg", None) is not None and (not params or params[0].name not in
                                                              ("eval_ctx", "environment", "env",
                                                               "context")):
        # An async_variant wrapper: its sync function's signature lacks the passed argument.
        passed = inspect.Parameter("passed", inspect.Parameter.POSITIONAL_ONLY)
        signature = signature.replace(parameters=[passed, *params])

    def bounded(*args: Any, **kwargs: Any) -> Any:
        tick()
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        _check_filter(name, bound.arguments)
        result = func(*bound.args, **bound.kwargs)
        refuse_over(weight(result), f"the result of |{name}")
        return result

    return update_wrapper(bounded, func)  # keeps Jinja's pass_context/eval_context marks


class _CheckedCodeGenerator(CodeGenerator):
    """Jinja's code generator, with ``a ~ b`` checked before the strings are joined."""

    def visit_Concat(self, node: jinja2.nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            join = "(markup_join if context.eval_ctx.volatile else str_join)"
        else:
            join = "markup_join" if frame.eval_ctx.autoescape else "str_join"
        self.write(f"{join}(environment.checked_parts((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(")))")


def _bounded_range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise SandboxLimit(f"range() is limited to {MAX_RANGE} items in a template")
    return numbers


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every amplifying operation checked before it runs, output
    counted as it is joined, nested macro calls counted and the deadline checked at each
    operator, call, attribute and output chunk."""

    code_generator_class = _CheckedCodeGenerator
    # Intercepted operators are also never folded at compile time (the load of a campaign).
    intercepted_binops = frozenset(["+", "*", "**", "%"])

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=self._finalize, **options)
        self.globals = {k: v for k, v in self.globals.items() if k in ("dict", "namespace")}
        self.globals["range"] = _bounded_range
        self.filters = {name: _bounded_filter(name, f) for name, f in self.filters.items()}

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        limits.check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Any, __obj: Any, *args: Any,
             **kwargs: Any) -> Any:
        tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            if getattr(__obj, "__name__", "") == "join" and args:
                items = list(args[0])
                limits.check_join(owner, items)
                args = (items, *args[1:])
            limits.check_str_method(owner, getattr(__obj, "__name__", ""), args)
        if not isinstance(__obj, (Macro, LoopContext)):
            return super().call(__context, __obj, *args, **kwargs)
        with limits.nested():
            return super().call(__context, __obj, *args, **kwargs)

    def getattr(self, obj: Any, attribute: str) -> Any:
        tick()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        tick()
        return super().getitem(obj, argument)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        fmt = value.__self__
        is_map = value.__name__ == "format_map"

        def checked(*args: Any, **kwargs: Any) -> str:
            tick()
            if is_map and args and isinstance(args[0], dict):
                limits.check_format(fmt, (), args[0])
            else:
                limits.check_format(fmt, args, kwargs)
            return wrapped(*args, **kwargs)
        return checked

    @staticmethod
    def _finalize(value: Any) -> Any:
        size = weight(value)
        refuse_over(size, "an expression's output")
        limits.produced(size)
        return value

    @staticmethod
    def checked_parts(parts: tuple[Any, ...]) -> tuple[Any, ...]:
        """``a ~ b ~ ...``: the parts, once their total is known to be within limits."""
        tick()
        refuse_over(sum(weight(p) for p in parts), "the result of ~")
        return parts

    @staticmethod
    def concat(parts: Iterable[str]) -> str:
        """Join a render's output (and a block's, a macro's), counting it as it comes."""
        kept: list[str] = []
        size = 0
        for part in parts:
            tick()
            size += len(part)
            refuse_over(size, "the rendered text")
            kept.append(part)
        return "".join(kept)
