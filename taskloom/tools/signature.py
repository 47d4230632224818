"""A function's signature as a Pydantic model of its keyword arguments.

Every parameter needs a type annotation; its docstring description becomes the field's
description, so the JSON schema an LLM planner sees explains each argument.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, PydanticUserError, create_model

from taskloom.errors import ToolError


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """Whether calling `fn` (a function, partial or callable object) gives a coroutine."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def input_model(
    fn: Callable[..., Any], tool_name: str, docs: Mapping[str, str]
) -> type[BaseModel]:
    """A model with one field per keyword parameter of `fn`; extra arguments are refused."""
    try:
        signature = inspect.signature(fn)
        hints = _type_hints(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolError(f"cannot read the signature of tool '{tool_name}': {exc}") from exc
    fields: dict[str, Any] = {
        field_key(param.name): _field(param, hints, docs, tool_name)
        for param in signature.parameters.values()
    }
    try:
        model = create_model(
            f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        # Built now so that a type with no JSON schema fails at decoration, not in a planner.
        model.model_json_schema()
    except PydanticUserError as exc:
        raise ToolError(
            f"tool '{tool_name}' has a parameter type that JSON cannot describe: {exc}"
        ) from exc
    return model


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not (inspect.isfunction(target) or inspect.ismethod(target)):
        target = getattr(target, "__call__", target)  # noqa: B004 - callable objects
    return get_type_hints(target, include_extras=True)


def _field(
    param: inspect.Parameter, hints: Mapping[str, Any], docs: Mapping[str, str], tool_name: str
) -> tuple[Any, Any]:
    where = f"parameter '{param.name}' of tool '{tool_name}'"
    if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD, param.POSITIONAL_ONLY):
        raise ToolError(f"{where}: tools take keyword arguments only, not *args, **kwargs or '/'")
    if param.name not in hints:
        raise ToolError(f"{where} has no type annotation; tools need one on every parameter")
    default = ... if param.default is param.empty else param.default
    alias = param.name if field_key(param.name) != param.name else None
    return hints[param.name], Field(default, alias=alias, description=docs.get(param.name))


def field_key(param_name: str) -> str:
    """The model field a parameter is stored under."""
    # Names such as `json`, `schema` or `model_config` clash with BaseModel attributes;
    # they live under another key, and their alias keeps the public name.
    clashes = param_name.startswith("_") or hasattr(BaseModel, param_name)
    return f"arg_{param_name.lstrip('_')}_" if clashes else param_name


def param_name(key: str, alias: str | None) -> str:
    """The public name of the field stored under `key`."""
    return alias or key
