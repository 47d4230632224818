"""`Tool`: a callable with validated, schema-described keyword arguments, and `@tool`,
which makes one from a type-annotated function (its signature becomes a Pydantic model,
its docstring the description)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, overload

import anyio.to_thread
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import ErrorDetails

from taskloom.errors import ToolError
from taskloom.naming import did_you_mean
from taskloom.tools.docstrings import param_docs, summary
from taskloom.tools.signature import input_model, is_async_callable, param_name

__all__ = ["Tool", "make_tool", "tool"]


@dataclass(frozen=True)
class Tool:
    """A callable with a validated, schema-described set of keyword arguments."""

    name: str
    description: str
    input_model: type[BaseModel]
    fn: Callable[..., Any]
    is_async: bool

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON schema of the arguments, as an LLM planner or a spec checker sees it."""
        schema = self.input_model.model_json_schema(schema_generator=_UntitledJsonSchema)
        schema.pop("title", None)
        return schema

    def validate_args(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Check and coerce `args`; return them keyed by parameter name, ready for `fn`."""
        try:
            validated = self.input_model.model_validate(dict(args))
        except ValidationError as exc:
            problems = "; ".join(_describe_error(error) for error in exc.errors())
            raise ToolError(f"tool '{self.name}' got invalid arguments: {problems}") from None
        return {
            param_name(key, info.alias): getattr(validated, key)
            for key, info in self.input_model.model_fields.items()
        }

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        """Problems visible before a run: unknown or missing arguments, badly typed literals.

        An argument named in `templated` gets its value at run time, so it counts as
        present but its type cannot be checked yet. Each problem quotes the argument it
        is about and leaves the tool's name to the caller, which reports it in context.
        """
        return [
            *self._unknown_arg_problems([*literal_args, *templated]),
            *self._missing_arg_problems({*literal_args, *templated}),
            *self._literal_type_problems(literal_args),
        ]

    async def call(self, args: Mapping[str, Any]) -> Any:
        """Validate `args` and run the tool; a sync function runs in a worker thread."""
        kwargs = self.validate_args(args)
        try:
            if self.is_async:
                return await self.fn(**kwargs)
            # Abandoning the thread on cancel lets a cancelled run stop waiting; the
            # thread itself finishes in the background, since threads cannot be killed.
            return await anyio.to_thread.run_sync(
                functools.partial(self.fn, **kwargs), abandon_on_cancel=True
            )
        except ToolError:
            raise
        except Exception as exc:
            # Cancellation exceptions derive from BaseException and pass through untouched.
            raise ToolError(f"tool '{self.name}' raised {type(exc).__name__}: {exc}") from exc

    def _parameter_names(self) -> list[str]:
        fields = self.input_model.model_fields
        return [param_name(key, info.alias) for key, info in fields.items()]

    def _unknown_arg_problems(self, given: Iterable[str]) -> list[str]:
        known = self._parameter_names()
        return [
            f"no argument '{name}'{_hint_suffix(name, known)}"
            for name in dict.fromkeys(given)
            if name not in known
        ]

    def _missing_arg_problems(self, present: Collection[str]) -> list[str]:
        return [
            f"missing required argument '{param_name(key, info.alias)}'"
            for key, info in self.input_model.model_fields.items()
            if info.is_required() and param_name(key, info.alias) not in present
        ]

    def _literal_type_problems(self, literal_args: Mapping[str, Any]) -> list[str]:
        # Validating the whole model and keeping only errors about given literals checks
        # each literal on its own; missing and unknown names are reported above.
        try:
            self.input_model.model_validate(dict(literal_args))
        except ValidationError as exc:
            return [
                _describe_error(error)
                for error in exc.errors()
                if error["type"] not in ("missing", "extra_forbidden")
                and error["loc"]
                and error["loc"][0] in literal_args
            ]
        return []


class _UntitledJsonSchema(GenerateJsonSchema):
    """Leave out the auto-generated per-field titles ("Max Bytes"); they only add tokens."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def _describe_error(error: ErrorDetails) -> str:
    field = ".".join(str(part) for part in error["loc"]) or "arguments"
    if error["type"] == "missing":
        return f"'{field}' is required"
    if error["type"] == "extra_forbidden":
        return f"'{field}' is not an argument"
    return f"'{field}': {error['msg']} (got {error['input']!r})"


def _hint_suffix(name: str, candidates: Iterable[str]) -> str:
    hint = did_you_mean(name, candidates)
    return f"; {hint}" if hint else ""


# ---------------------------------------------------------------------------------------
# @tool: signature + docstring -> Tool


@overload
def tool(
    fn: Callable[..., Any], /, *, name: str | None = None, description: str | None = None
) -> Tool: ...
@overload
def tool(
    fn: None = None, /, *, name: str | None = None, description: str | None = None
) -> Callable[[Callable[..., Any]], Tool]: ...
def tool(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
) -> Tool | Callable[[Callable[..., Any]], Tool]:
    """Make a `Tool` from a type-annotated function; use bare (`@tool`) or with options.

    The name defaults to the function's name and the description to the first
    paragraph of its docstring. Argument descriptions come from the docstring's
    `Args:` (Google), `Parameters` (numpy) or `:param x:` (Sphinx) section.
    """

    def wrap(target: Callable[..., Any]) -> Tool:
        return make_tool(target, name=name, description=description)

    return wrap if fn is None else wrap(fn)


def make_tool(fn: Callable[..., Any], *, name: str | None, description: str | None) -> Tool:
    """`@tool`'s work: name, describe and model the arguments of `fn`."""
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name:
        raise ToolError(f"cannot name the tool for {fn!r}; pass name=...")
    docstring = inspect.getdoc(fn) or ""
    return Tool(
        name=tool_name,
        description=description if description is not None else summary(docstring),
        input_model=input_model(fn, tool_name, param_docs(docstring)),
        fn=fn,
        is_async=is_async_callable(fn),
    )
