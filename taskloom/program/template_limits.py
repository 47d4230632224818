"""Size limits for what a template may build, checked before the work is done.

A spec is untrusted. Jinja's sandbox stops escapes, not work: `10 ** 10 ** 8`,
`'a' * 10 ** 9` or `'{0:>999999999}'.format(1)` run for minutes or allocate gigabytes
inside one C call, which no timeout can interrupt. So every operation that can grow a
value estimates the result's size from its operands first, and refuses past a limit.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.utils import Namespace

# Stated defaults; `set_template_limits` changes them for the whole process.
MAX_OUTPUT_CHARS = 1 << 20  # 1 MiB of text: far more than any model's prompt
MAX_INTEGER_BITS = 4096  # as the calculator; Python prints at most ~14,000 bits anyway
MAX_COLLECTION_ITEMS = 100_000  # as Jinja's own cap on `range`
MAX_RENDER_SECONDS = 1.0  # a template renders in microseconds; loops are the danger
# Levels of syntax (`a + b + c` is two). Python's compiler slows sharply on the code of a
# deeply nested expression (a second at ~150 levels, all in one C call) and fails at 200.
MAX_NESTING = 100


@dataclass(frozen=True)
class TemplateLimits:
    """How much one template may build and how long it may take."""

    max_output_chars: int = MAX_OUTPUT_CHARS
    max_integer_bits: int = MAX_INTEGER_BITS
    max_collection_items: int = MAX_COLLECTION_ITEMS
    max_render_seconds: float = MAX_RENDER_SECONDS
    max_nesting: int = MAX_NESTING


_limits = TemplateLimits()


def template_limits() -> TemplateLimits:
    """The limits every template renders under now."""
    return _limits


def set_template_limits(limits: TemplateLimits) -> TemplateLimits:
    """Make `limits` the process-wide limits; returns the previous ones."""
    global _limits
    previous, _limits = _limits, limits
    return previous


class TemplateLimitError(SecurityError):
    """An operation in a template would pass one of the `TemplateLimits`."""


# ---------------------------------------------------------------- checks


def check_chars(estimate: int, what: str) -> None:
    limit = _limits.max_output_chars
    if estimate > limit:
        raise TemplateLimitError(
            f"{what} would be about {estimate:,} characters, over the limit of "
            f"{limit:,} (max_output_chars)"
        )


def check_items(estimate: int, what: str) -> None:
    limit = _limits.max_collection_items
    if estimate > limit:
        raise TemplateLimitError(
            f"{what} would have {estimate:,} items, over the limit of {limit:,} "
            "(max_collection_items)"
        )


def check_bits(estimate: float, what: str) -> None:
    limit = _limits.max_integer_bits
    if estimate > limit:
        raise TemplateLimitError(
            f"{what} would be an integer of about {estimate:,.0f} bits, over the limit of "
            f"{limit:,} (max_integer_bits)"
        )


def check_text_of(value: Any, what: str) -> None:
    """Refuse turning `value` into text when that text would pass the limit; a list
    holding one big string 100,000 times is small itself and huge as text."""
    if type(value) is str:  # the common case, kept cheap
        check_chars(len(value), what)
    else:
        check_chars(approx_text_size(value, _limits.max_output_chars), what)


def approx_text_size(value: Any, budget: int, indent: int = 0) -> int:
    """An over-estimate of len(str(value)) (or of its JSON with `indent`), which stops
    counting once past `budget`, so that a shared reference repeated many times costs
    little to size. Walks with a stack, not recursion: nesting may be deep."""
    total = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        total += indent * depth
        if type(item) in _PLAIN_SCALARS:  # most items: skip the ABC checks below
            total += len(item) + 2 if type(item) is str else 24
            continue
        total += _scalar_size(item)
        children = _children(item)
        if children is not None:
            stack.extend((child, depth + 1) for child in children)
            total += 4 * len(children)  # separators, quotes, brackets
        if total > budget:
            return total
    return total


# Exact types whose text is short (or, for str, its length); int is not here: it can be
# thousands of digits long.
_PLAIN_SCALARS = frozenset({str, float, bool, type(None)})


def _scalar_size(item: Any) -> int:
    if isinstance(item, str | bytes | bytearray):
        return len(item) + 2
    if isinstance(item, bool) or item is None:
        return 5
    if isinstance(item, int):
        return item.bit_length() // 3 + 2  # decimal digits: log10(2) < 1/3
    return 24  # floats, containers' brackets, small objects (loop, cycler)


def _children(item: Any) -> list[Any] | None:
    if isinstance(item, str | bytes | bytearray | range):
        return None
    if isinstance(item, Mapping):
        return [part for pair in item.items() for part in pair]
    if isinstance(item, Namespace):
        # A namespace prints its attributes; they live under a mangled private name.
        attributes = getattr(item, "_Namespace__attrs", {})
        return [part for pair in attributes.items() for part in pair]
    if isinstance(item, list | tuple | set | frozenset):
        return list(item)
    return None


def check_nesting(tree: nodes.Node) -> None:
    """Refuse a syntax tree deeper than `max_nesting`, before anything compiles it."""
    limit = _limits.max_nesting
    stack = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise TemplateLimitError(
                f"the template nests too deeply: over {limit} levels (max_nesting); "
                "split a long expression with {% set %}"
            )
        stack.extend((child, depth + 1) for child in node.iter_child_nodes())


def check_power(base: Any, exponent: Any) -> None:
    # Only int ** int grows without bound; float powers overflow quickly instead.
    if not (is_int(base) and is_int(exponent)) or exponent <= 0 or abs(base) <= 1:
        return
    if exponent > _limits.max_integer_bits:  # at least one bit per factor of 2
        check_bits(float(min(exponent, 10**300)), f"{base} ** {exponent}")
    check_bits(exponent * math.log2(abs(base)), f"{base} ** {exponent}")


def check_decimal_shift(digits: Any, what: str) -> None:
    """`round(x, -n)` and friends compute 10 ** n first."""
    if is_int(digits):
        check_bits(float(min(abs(digits), 10**300)) * math.log2(10), what)


def check_product(left: Any, right: Any) -> None:
    """`*`: numbers multiply; a string, list or tuple repeats."""
    if is_int(left) and is_int(right):
        check_bits(left.bit_length() + right.bit_length(), "the product")
        return
    sequence, count = (left, right) if is_int(right) else (right, left)
    if not is_int(count) or count <= 0:
        return
    if isinstance(sequence, str | bytes | bytearray):
        check_chars(len(sequence) * count, "the repeated string")
    elif isinstance(sequence, list | tuple):
        check_items(len(sequence) * count, "the repeated list")


def check_sum(left: Any, right: Any) -> None:
    """`+` on strings and lists: a loop that doubles a value reaches gigabytes in 30
    steps. A list holds references, so its items are counted, not its text."""
    if isinstance(left, str) and isinstance(right, str):
        check_chars(len(left) + len(right), "the joined string")
    elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
        check_items(len(left) + len(right), "the joined list")


# `%[(key)][flags][width][.precision][length]type`; `*` takes the width from the args.
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")


def check_printf(template: Any, args: Any) -> None:
    """`'%999999999d' % 1` pads to a gigabyte: add up widths and precisions first."""
    if isinstance(template, bytes | bytearray):
        template = template.decode("latin-1")
    if not isinstance(template, str):
        return
    values = args if isinstance(args, tuple) else (args,)
    star = max((abs(v) for v in values if is_int(v)), default=0)
    padding = 0
    for match in _PRINTF_FIELD.finditer(template):
        for number in match.groups():
            if number is not None:
                padding += star if number == "*" else int(number)
    budget = _limits.max_output_chars
    estimate = len(template) + padding + approx_text_size(args, budget)
    check_chars(estimate, "the formatted string")


_FORMAT_NUMBER = re.compile(r"\d+")


def check_format_spec(spec: str) -> None:
    """A `{0:>999999999}` field: every number in the spec may be a width."""
    if any(c.isdigit() for c in spec):
        check_chars(sum(int(n) for n in _FORMAT_NUMBER.findall(spec)), "the formatted field")


def check_join(separator: str, parts: list[Any] | tuple[Any, ...]) -> None:
    budget = _limits.max_output_chars
    total = len(separator) * max(len(parts) - 1, 0)
    for part in parts:
        kind = type(part)
        if kind is str:
            total += len(part)
        elif kind is int:
            total += part.bit_length() // 3 + 2
        else:
            total += approx_text_size(part, budget)
        if total > budget:
            break
    check_chars(total, "the joined string")


def check_replace(text: str, old: str, new: str, count: int | None) -> None:
    occurrences = text.count(old) if old else len(text) + 1
    if count is not None and count >= 0:
        occurrences = min(occurrences, count)
    check_chars(len(text) + occurrences * max(len(new) - len(old), 0), "the replaced string")


def check_width(width: Any, what: str) -> None:
    if is_int(width):
        check_chars(width, what)


def count_items(values: Iterable[Any]) -> list[Any]:
    """`values` as a list, refusing once it passes the item limit (it may be lazy)."""
    limit = _limits.max_collection_items
    items: list[Any] = []
    for value in values:
        items.append(value)
        if len(items) > limit:
            check_items(len(items), "the sequence")
    return items


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
