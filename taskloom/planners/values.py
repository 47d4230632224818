"""Resolving `$N` references against results, keeping each value's type.

`$1` is task 1's result itself (a number stays a number, a dict stays a dict);
`$1.city` and `$1["city"]` step into it. Only a reference embedded in a longer string
("population of $1") is turned into text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from taskloom.errors import TaskloomError
from taskloom.planners.base import Interpolation, PathStep, Ref


class ReferenceResolutionError(TaskloomError):
    """A `$N` reference names a result that does not exist or a field it does not have."""


def resolve_args(args: Mapping[str, Any], results: Mapping[int, Any]) -> dict[str, Any]:
    """`args` with every reference replaced by the value it names."""
    return {name: resolve_value(value, results) for name, value in args.items()}


def resolve_value(value: Any, results: Mapping[int, Any]) -> Any:
    if isinstance(value, Ref):
        return follow(value, results)
    if isinstance(value, Interpolation):
        return "".join(
            as_text(follow(part, results)) if isinstance(part, Ref) else part
            for part in value.parts
        )
    if isinstance(value, Mapping):
        return {key: resolve_value(item, results) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve_value(item, results) for item in value]
    return value


def follow(ref: Ref, results: Mapping[int, Any]) -> Any:
    """The value `ref` names: task N's result, then each step of its path."""
    if ref.task not in results:
        raise ReferenceResolutionError(f"{ref} names task {ref.task}, which has no result")
    value = results[ref.task]
    for depth, step in enumerate(ref.path):
        value = _step(value, step, Ref(ref.task, ref.path[:depth]))
    return value


def _step(value: Any, step: PathStep, reached: Ref) -> Any:
    if isinstance(value, Mapping):
        for key in (step, str(step)):
            if key in value:
                return value[key]
        fields = ", ".join(str(k) for k in value) or "none"
        raise ReferenceResolutionError(f"{reached} has no field '{step}' (fields: {fields})")
    if isinstance(value, list | tuple) and isinstance(step, int):
        if -len(value) <= step < len(value):
            return value[step]
        raise ReferenceResolutionError(
            f"{reached} has {len(value)} items, so it has no item [{step}]"
        )
    kind = type(value).__name__
    what = f"item [{step}]" if isinstance(step, int) else f"field '{step}'"
    raise ReferenceResolutionError(f"{reached} is a {kind} ({preview(value)}), so it has no {what}")


def as_text(value: Any) -> str:
    """How a result reads inside a sentence or a prompt: strings as they are, everything
    else as JSON."""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except ValueError:  # circular structures
        return repr(value)


def preview(value: Any, limit: int = 80) -> str:
    text = as_text(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
