"""Jinja's built-in filters, each wrapped with the size check its arguments need.

The wrappers keep Jinja's signatures and call Jinja's own implementation once the
estimate of the result is within `TemplateLimits`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable
from typing import Any

from jinja2 import filters as jf
from jinja2.environment import Environment
from jinja2.nodes import EvalContext
from jinja2.utils import generate_lorem_ipsum, pass_environment, pass_eval_context

from taskloom.program import template_limits as limits
from taskloom.program.template_limits import template_limits

# Filters that make text of their input (soft_str): a list of references to one big
# string is small until one of these prints it.
_TEXT_FILTERS = (
    "capitalize", "e", "escape", "forceescape", "lower", "upper", "title", "trim",
    "striptags", "truncate", "urlize", "urlencode", "wordcount", "string", "safe",
    "xmlattr", "filesizeformat",
)  # fmt: skip


def bounded_filters() -> dict[str, Callable[..., Any]]:
    """Replacements for Jinja's default filters, keyed by filter name."""
    replaced: dict[str, Callable[..., Any]] = {
        name: _checks_text_of_input(jf.FILTERS[name]) for name in _TEXT_FILTERS
    }
    replaced.update(
        center=_center,
        indent=_indent,
        format=_format,
        join=_join,
        replace=_replace,
        wordwrap=_wordwrap,
        batch=_batch,
        slice=_slice,
        tojson=_tojson,
        pprint=_pprint,
        round=_round,
        sum=_sum,
    )
    return replaced


def bounded_lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:
    # About 11 characters a word, at most `max` words a paragraph.
    limits.check_chars(n * max * 11, "lipsum()")
    return generate_lorem_ipsum(n, html, min, max)


def _checks_text_of_input(filter_func: Callable[..., Any]) -> Callable[..., Any]:
    # pass_context and friends put the context first; the value comes after it.
    position = 1 if getattr(filter_func, "jinja_pass_arg", None) is not None else 0

    @functools.wraps(filter_func)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if len(args) > position:
            limits.check_text_of(args[position], "the filter's text")
        return filter_func(*args, **kwargs)

    return checked


def _center(value: Any, width: int = 80) -> str:
    limits.check_text_of(value, "center()")
    limits.check_width(width, "center()")
    return jf.do_center(value, width)


def _indent(s: Any, width: int | str = 4, first: bool = False, blank: bool = False) -> str:
    limits.check_text_of(s, "indent()")
    text = str(s)
    step = len(width) if isinstance(width, str) else width
    if limits.is_int(step):
        limits.check_chars(len(text) + (text.count("\n") + 1) * step, "indent()")
    return jf.do_indent(s, width, first, blank)


def _format(value: Any, *args: Any, **kwargs: Any) -> str:
    limits.check_printf(value, kwargs or args)
    return jf.do_format(value, *args, **kwargs)


@pass_eval_context
def _join(
    eval_ctx: EvalContext, value: Iterable[Any], d: str = "", attribute: str | int | None = None
) -> str:
    parts = limits.count_items(value)
    if attribute is not None:
        parts = list(map(jf.make_attrgetter(eval_ctx.environment, attribute), parts))
    limits.check_join(str(d), parts)
    return jf.sync_do_join(eval_ctx, parts, d)


@pass_eval_context
def _replace(eval_ctx: EvalContext, s: Any, old: Any, new: Any, count: int | None = None) -> str:
    limits.check_text_of(s, "replace()")
    limits.check_replace(str(s), str(old), str(new), count)
    return jf.do_replace(eval_ctx, s, old, new, count)


@pass_environment
def _wordwrap(
    environment: Environment,
    s: Any,
    width: int = 79,
    break_long_words: bool = True,
    wrapstring: str | None = None,
    break_on_hyphens: bool = True,
) -> str:
    limits.check_text_of(s, "wordwrap()")
    text = str(s)
    separator = environment.newline_sequence if wrapstring is None else wrapstring
    # Each line ends at a space, a newline or the width: at most this many lines.
    lines = sum(text.count(c) for c in " \n\t") + len(text) // max(int(width), 1) + 1
    limits.check_chars(len(text) + min(lines, len(text) + 1) * len(separator), "wordwrap()")
    return jf.do_wordwrap(environment, s, width, break_long_words, wrapstring, break_on_hyphens)


def _batch(value: Iterable[Any], linecount: int, fill_with: Any = None) -> Any:
    limits.check_items(linecount, "batch()")
    return jf.do_batch(value, linecount, fill_with)


def _slice(value: Collection[Any], slices: int, fill_with: Any = None) -> Any:
    limits.check_items(slices, "slice()")
    return jf.sync_do_slice(value, slices, fill_with)


@pass_eval_context
def _tojson(eval_ctx: EvalContext, value: Any, indent: int | None = None) -> Any:
    budget = template_limits().max_output_chars
    step = indent if limits.is_int(indent) else 0
    limits.check_chars(limits.approx_text_size(value, budget, step or 0), "tojson()")
    return jf.do_tojson(eval_ctx, value, indent)


def _pprint(value: Any) -> str:
    budget = template_limits().max_output_chars
    limits.check_chars(limits.approx_text_size(value, budget, indent=1), "pprint()")
    return jf.do_pprint(value)


def _round(value: float, precision: int = 0, method: str = "common") -> float:
    limits.check_decimal_shift(precision, f"round(precision={precision})")
    return jf.do_round(value, precision, method)  # type: ignore[arg-type]


@pass_environment
def _sum(
    environment: Environment,
    iterable: Iterable[Any],
    attribute: str | int | None = None,
    start: Any = 0,
) -> Any:
    items = limits.count_items(iterable)
    if attribute is not None:
        items = list(map(jf.make_attrgetter(environment, attribute), items))
    if isinstance(start, list | tuple):  # concatenating lists
        total = len(start) + sum(len(i) for i in items if isinstance(i, list | tuple))
        limits.check_items(total, "sum()")
    elif isinstance(start, str):
        limits.check_join(start, items)
    return jf.sync_do_sum(environment, items, None, start)
