"""Tools: typed Python functions that programs and planners can call by name.

`@tool` turns a function into a `Tool`: its signature becomes a Pydantic model (so the
arguments are validated and a JSON schema can be shown to an LLM planner), and its
docstring becomes the description. A `ToolRegistry` maps names to tools and also
resolves `package.module:function` references on demand.
"""

from __future__ import annotations

import difflib
import functools
import importlib
import inspect
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_type_hints, overload

import anyio.to_thread
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PydanticUserError,
    ValidationError,
    create_model,
)
from pydantic.json_schema import GenerateJsonSchema
from pydantic_core import ErrorDetails

from taskloom.errors import ToolError

__all__ = ["Tool", "ToolNotFound", "ToolRegistry", "default_registry", "tool"]


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
            _param_name(key, info.alias): getattr(validated, key)
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
        return [_param_name(key, info.alias) for key, info in fields.items()]

    def _unknown_arg_problems(self, given: Iterable[str]) -> list[str]:
        known = self._parameter_names()
        return [
            f"no argument '{name}'{_did_you_mean(name, known)}"
            for name in dict.fromkeys(given)
            if name not in known
        ]

    def _missing_arg_problems(self, present: Collection[str]) -> list[str]:
        return [
            f"missing required argument '{_param_name(key, info.alias)}'"
            for key, info in self.input_model.model_fields.items()
            if info.is_required() and _param_name(key, info.alias) not in present
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


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    matches = difflib.get_close_matches(name, list(candidates), n=3)
    return f"; did you mean {' or '.join(repr(m) for m in matches)}?" if matches else ""


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
        return _make_tool(target, name=name, description=description)

    return wrap if fn is None else wrap(fn)


def _make_tool(fn: Callable[..., Any], *, name: str | None, description: str | None) -> Tool:
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name:
        raise ToolError(f"cannot name the tool for {fn!r}; pass name=...")
    docstring = inspect.getdoc(fn) or ""
    return Tool(
        name=tool_name,
        description=description if description is not None else _summary(docstring),
        input_model=_input_model(fn, tool_name, _param_docs(docstring)),
        fn=fn,
        is_async=_is_async_callable(fn),
    )


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    call = getattr(fn, "__call__", None)  # noqa: B004 - an object with an async __call__
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(call)


def _input_model(
    fn: Callable[..., Any], tool_name: str, docs: Mapping[str, str]
) -> type[BaseModel]:
    try:
        signature = inspect.signature(fn)
        hints = _type_hints(fn)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolError(f"cannot read the signature of tool '{tool_name}': {exc}") from exc
    fields: dict[str, Any] = {
        _field_key(param.name): _field(param, hints, docs, tool_name)
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
    alias = param.name if _field_key(param.name) != param.name else None
    return hints[param.name], Field(default, alias=alias, description=docs.get(param.name))


def _field_key(param_name: str) -> str:
    # Names such as `json`, `schema` or `model_config` clash with BaseModel attributes;
    # they live under another key, and their alias keeps the public name.
    clashes = param_name.startswith("_") or hasattr(BaseModel, param_name)
    return f"arg_{param_name.lstrip('_')}_" if clashes else param_name


def _param_name(field_key: str, alias: str | None) -> str:
    return alias or field_key


# ---------------------------------------------------------------------------------------
# Docstrings: the summary paragraph and per-argument descriptions

_GOOGLE_ARGS_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments):\s*$"
)
_GOOGLE_SECTION_HEADER = re.compile(
    r"^(Args|Arguments|Parameters|Params|Keyword Args|Keyword Arguments|Returns?|Yields?|"
    r"Raises|Examples?|Notes?|Attributes|Warnings?|See Also|Todo):\s*$"
)
_GOOGLE_ENTRY = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ENTRY = re.compile(r"^\*{0,2}(\w+(?:\s*,\s*\*{0,2}\w+)*)\s*(?::.*)?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$")
_UNDERLINE = re.compile(r"^\s*-{3,}\s*$")


def _summary(docstring: str) -> str:
    """The first paragraph, joined into one line; empty if the docstring opens with a section."""
    lines = docstring.splitlines()
    paragraph: list[str] = []
    for index, line in enumerate(lines):
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if not line.strip() or _starts_section(line, next_line):
            break
        paragraph.append(line.strip())
    return " ".join(paragraph)


def _starts_section(line: str, next_line: str) -> bool:
    return bool(
        _GOOGLE_SECTION_HEADER.match(line.strip())
        or _UNDERLINE.match(next_line)
        or line.lstrip().startswith(":param")
    )


def _param_docs(docstring: str) -> dict[str, str]:
    """Argument descriptions from a Google, numpy or Sphinx style docstring."""
    lines = docstring.splitlines()
    return _google_params(lines) or _numpy_params(lines) or _sphinx_params(lines)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _google_params(lines: Sequence[str]) -> dict[str, str]:
    starts = [i for i, line in enumerate(lines) if _GOOGLE_ARGS_HEADER.match(line.strip())]
    docs: dict[str, str] = {}
    for start in starts:
        header_indent = _indent(lines[start])
        block = _indented_block(lines[start + 1 :], deeper_than=header_indent)
        docs.update(_entries(block, _GOOGLE_ENTRY))
    return docs


def _numpy_params(lines: Sequence[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for i in range(len(lines) - 1):
        is_header = lines[i].strip() in ("Parameters", "Other Parameters")
        if is_header and _UNDERLINE.match(lines[i + 1]):
            block = _numpy_block(lines[i + 2 :])
            docs.update(_entries(block, _NUMPY_ENTRY))
    return docs


def _sphinx_params(lines: Sequence[str]) -> dict[str, str]:
    docs: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        match = _SPHINX_PARAM.match(line.strip())
        if match:
            current = match.group(1)
            docs[current] = match.group(2).strip()
        elif current and line.strip() and _indent(line) > 0:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
        else:
            current = None
    return docs


def _indented_block(lines: Sequence[str], *, deeper_than: int) -> list[str]:
    """Lines up to the first non-blank one not indented deeper than the section header."""
    block: list[str] = []
    for line in lines:
        if line.strip() and _indent(line) <= deeper_than:
            break
        block.append(line)
    return block


def _numpy_block(lines: Sequence[str]) -> list[str]:
    """Lines up to the next numpy section (a title line over a row of dashes)."""
    block: list[str] = []
    for index, line in enumerate(lines):
        next_line = lines[index + 1] if index + 1 < len(lines) else ""
        if line.strip() and _UNDERLINE.match(next_line):
            break
        block.append(line)
    return block


def _entries(block: Sequence[str], entry: re.Pattern[str]) -> dict[str, str]:
    """Split a block into `name: description` entries at the block's smallest indent."""
    indents = [_indent(line) for line in block if line.strip()]
    if not indents:
        return {}
    entry_indent = min(indents)
    docs: dict[str, str] = {}
    names: list[str] = []
    for line in block:
        text = line.strip()
        if not text:
            continue
        match = entry.match(text) if _indent(line) == entry_indent else None
        if match:
            names = [n.strip().lstrip("*") for n in match.group(1).split(",")]
            first_text = match.group(2).strip() if match.lastindex == 2 else ""
            docs.update(dict.fromkeys(names, first_text))
        else:
            for name in names:
                docs[name] = f"{docs[name]} {text}".strip()
    return docs


# ---------------------------------------------------------------------------------------
# The registry


class ToolNotFound(ToolError, KeyError):
    """No tool by that name, and no importable `module:function` either."""

    def __init__(self, message: str, *, name: str = "", suggestions: Sequence[str] = ()) -> None:
        self.name = name
        self.suggestions = list(suggestions)
        super().__init__(message)

    def __str__(self) -> str:
        # KeyError would show the message quoted, as if it were a key.
        return str(self.args[0])


class ToolRegistry:
    """Named tools, plus `package.module:function` references imported when first asked for."""

    def __init__(self, tools: Iterable[Tool | Callable[..., Any]] = ()) -> None:
        self._tools: dict[str, Tool] = {}
        self._imported: dict[str, Tool] = {}
        for each in tools:
            self.register(each)

    def register(self, t: Tool | Callable[..., Any], *, replace: bool = False) -> Tool:
        """Add a tool (a plain typed function is wrapped with `@tool`); return it."""
        registered = t if isinstance(t, Tool) else tool(t)
        if ":" in registered.name:
            raise ToolError(f"tool name '{registered.name}' may not contain ':' (module refs)")
        if registered.name in self._tools and not replace:
            raise ToolError(
                f"a tool named '{registered.name}' is already registered; "
                "pass replace=True to swap it"
            )
        self._tools[registered.name] = registered
        return registered

    def get(self, name: str) -> Tool:
        """The tool called `name`, or the one a `package.module:function` reference names."""
        if name in self._tools:
            return self._tools[name]
        if ":" in name:
            if name not in self._imported:
                self._imported[name] = _import_tool(name)
            return self._imported[name]
        suggestions = difflib.get_close_matches(name, list(self._tools), n=3)
        known = ", ".join(sorted(self._tools)) or "none"
        hint = _did_you_mean(name, self._tools) or f"; registered tools: {known}"
        raise ToolNotFound(f"unknown tool '{name}'{hint}", name=name, suggestions=suggestions)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except ToolError:
            return False
        return True

    def names(self) -> list[str]:
        """Registered tool names, sorted; imported `module:function` tools are not listed."""
        return sorted(self._tools)

    def schemas(self) -> list[dict[str, Any]]:
        """One `{"name", "description", "parameters"}` entry per registered tool, for planners."""
        return [
            {"name": t.name, "description": t.description, "parameters": t.input_schema}
            for t in (self._tools[name] for name in self.names())
        ]


def _import_tool(reference: str) -> Tool:
    module_name, _, attribute_path = reference.partition(":")
    module = _import_module(module_name, reference)
    target: Any = module
    for attribute in attribute_path.split("."):
        if not hasattr(target, attribute):
            public = [n for n in dir(target) if not n.startswith("_")]
            suggestions = difflib.get_close_matches(attribute, public, n=3)
            raise ToolNotFound(
                f"'{module_name}' has no attribute '{attribute}' (tool '{reference}')"
                f"{_did_you_mean(attribute, public)}",
                name=reference,
                suggestions=[f"{module_name}:{s}" for s in suggestions],
            )
        target = getattr(target, attribute)
    if isinstance(target, Tool):
        return target
    if not callable(target):
        raise ToolError(f"'{reference}' is a {type(target).__name__}, not a function or Tool")
    return _make_tool(target, name=attribute_path.rpartition(".")[2], description=None)


def _import_module(module_name: str, reference: str) -> Any:
    if not module_name:
        raise ToolNotFound(f"tool reference '{reference}' has no module", name=reference)
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # Only the module itself (or a parent package) missing means "not found"; a
        # missing dependency inside it is the module's own bug and should say so.
        if exc.name and (module_name == exc.name or module_name.startswith(f"{exc.name}.")):
            raise ToolNotFound(
                f"no module '{module_name}' for tool '{reference}'", name=reference
            ) from None
        raise ToolError(f"importing '{module_name}' for tool '{reference}' failed: {exc}") from exc
    except Exception as exc:
        raise ToolError(f"importing '{module_name}' for tool '{reference}' failed: {exc}") from exc


def default_registry(
    *, root: Path | None = None, allowed_hosts: Sequence[str] = ()
) -> ToolRegistry:
    """A registry with the built-in tools: calculator, read_file, http_get, sqlite_query.

    Files are confined to `root` (default: the current directory) and HTTP to
    `allowed_hosts` (default: none, so http_get refuses every URL).
    """
    # Imported here because the built-ins themselves import `tool` from this module.
    from taskloom.tools.builtin import (
        calculator_tool,
        http_get_tool,
        read_file_tool,
        sqlite_query_tool,
    )

    base = root if root is not None else Path.cwd()
    return ToolRegistry(
        [
            calculator_tool(),
            read_file_tool(base),
            http_get_tool(allowed_hosts),
            sqlite_query_tool(base),
        ]
    )
