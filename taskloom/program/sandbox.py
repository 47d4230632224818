"""The bounded Jinja sandbox every spec template renders in.

Jinja's `ImmutableSandboxedEnvironment` refuses unsafe attributes and mutation; this
subclass also refuses work past `TemplateLimits`: the growing operators (`+ * % **`
and `~`), the string methods and filters that pad, repeat or join, text made from a
value (`{{ x }}`, `|string`), and the size of a template's output. Each check runs
before the operation, from the operands' sizes (template_limits.py).
"""

from __future__ import annotations

import functools
import string
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.runtime import Context, markup_join, str_join
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedFormatter
from markupsafe import EscapeFormatter, Markup

from taskloom.program import template_limits as limits
from taskloom.program.bounded_filters import bounded_filters, bounded_lipsum
from taskloom.program.template_limits import template_limits


def bounded_concat(parts: Iterable[str]) -> str:
    """The environment's `concat`: joins a template's output (and that of blocks,
    macros and `{% set %}` captures), refusing once past `max_output_chars`."""
    budget = template_limits().max_output_chars
    if isinstance(parts, list):
        limits.check_chars(sum(map(len, parts)), "the template's output")
        return "".join(parts)
    pieces: list[str] = []
    total = 0
    for piece in parts:  # a generator: stop a runaway loop early
        total += len(piece)
        if total > budget:
            limits.check_chars(total, "the template's output")
        pieces.append(piece)
    return "".join(pieces)


def _finalize(value: Any) -> Any:
    # Each `{{ value }}` becomes str(value); a list of references to one big string
    # would become gigabytes inside that one call.
    if type(value) is not str:
        limits.check_text_of(value, "the printed value")
    return value


class _BoundedCodeGenerator(CodeGenerator):
    """Compiles `a ~ b` to a checked join; Jinja's own joins in one unchecked call."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        if frame.eval_ctx.volatile:
            escaping = "context.eval_ctx.autoescape"
        else:
            escaping = repr(bool(frame.eval_ctx.autoescape))
        self.write("environment.join_operands((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write(f"), {escaping})")


class _BoundedFormatter(SandboxedFormatter):
    """`str.format` with every field's width checked and the whole result counted."""

    def __init__(self, env: ImmutableSandboxedEnvironment, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self._produced = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        limits.check_format_spec(format_spec)
        limits.check_text_of(value, "the formatted field")
        text = super().format_field(value, format_spec)
        self._produced += len(text)
        limits.check_chars(self._produced, "the formatted string")
        return text


class _BoundedEscapeFormatter(_BoundedFormatter, EscapeFormatter):
    pass


# str and bytes methods whose result can be far larger than the string itself.
_PADDING_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """An immutable sandbox that also refuses oversized work (see the module doc)."""

    intercepted_binops = frozenset({"+", "*", "%", "**"})
    code_generator_class = _BoundedCodeGenerator
    concat = staticmethod(bounded_concat)

    def __init__(self, **options: Any) -> None:
        super().__init__(finalize=_finalize, **options)
        self.filters.update(bounded_filters())
        self.globals["lipsum"] = bounded_lipsum

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            limits.check_power(left, right)
        elif operator == "*":
            limits.check_product(left, right)
        elif operator == "+":
            limits.check_sum(left, right)
        elif operator == "%":
            limits.check_printf(left, right)
        return self.binop_table[operator](left, right)

    def call(
        self, context: Context, callee: Any, /, *args: Any, **kwargs: Any
    ) -> Any:
        owner = getattr(callee, "__self__", None)
        name = getattr(callee, "__name__", "")
        if isinstance(owner, str | bytes | bytearray):
            args = _check_text_method(owner, name, args, kwargs)
        elif limits.is_int(owner) and name == "to_bytes":
            limits.check_width(args[0] if args else kwargs.get("length", 1), "to_bytes()")
        return super().call(context, callee, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        # Jinja's own version with a formatter that checks widths; the formatter is
        # made per call, since it counts what it has produced.
        if getattr(value, "__name__", None) not in ("format", "format_map"):
            return None
        owner = getattr(value, "__self__", None)
        if not isinstance(owner, str):
            return None
        is_map = value.__name__ == "format_map"

        def bounded_format(*args: Any, **kwargs: Any) -> str:
            positional, named = args, kwargs
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one positional argument")
                positional, named = (), args[0]
            formatter: string.Formatter
            if isinstance(owner, Markup):
                formatter = _BoundedEscapeFormatter(self, escape=owner.escape)
            else:
                formatter = _BoundedFormatter(self)
            return type(owner)(formatter.vformat(owner, positional, named))

        return functools.update_wrapper(bounded_format, value)

    def join_operands(self, operands: tuple[Any, ...], autoescape: bool) -> str:
        limits.check_join("", operands)
        return markup_join(operands) if autoescape else str_join(operands)


def _check_text_method(
    owner: str | bytes | bytearray, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[Any, ...]:
    """Checks a str/bytes method call; returns the args to call with (a lazy `join`
    argument is read once, here)."""
    if name in _PADDING_METHODS and args:
        limits.check_width(args[0], f"{name}()")
    elif name == "expandtabs":
        tabsize = args[0] if args else kwargs.get("tabsize", 8)
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        if limits.is_int(tabsize):
            limits.check_chars(len(owner) + tabs * tabsize, "expandtabs()")
    elif name == "join" and len(args) == 1:
        parts = limits.count_items(args[0])
        if isinstance(owner, str):
            limits.check_join(owner, parts)
        else:
            limits.check_chars(len(owner) * len(parts) + sum(map(len, parts)), "join()")
        return (parts,)
    elif name == "replace" and len(args) >= 2 and isinstance(owner, str):
        if isinstance(args[0], str) and isinstance(args[1], str):
            count = args[2] if len(args) > 2 else kwargs.get("count")
            limits.check_replace(owner, args[0], args[1], count)
    elif name == "replace" and len(args) >= 2:
        limits.check_chars(len(owner) * (len(args[1]) + 1), "replace()")
    elif name == "translate" and args and isinstance(args[0], Mapping):
        longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
        limits.check_chars(len(owner) * longest, "translate()")
    return args
