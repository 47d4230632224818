"""Pydantic validation errors translated into located SpecErrors with hints.

Pydantic reports a `loc` through the validated data, with the union tags it inserts;
this module follows that `loc` back to a YAML path (and so, through the SourceMap, to
a line), works out which model the path belongs to, and words a message and a hint.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Any

from pydantic import BaseModel
from pydantic_core import ErrorDetails

from taskloom.errors import SpecError, SpecErrors
from taskloom.naming import did_you_mean
from taskloom.program.kinds import node_models
from taskloom.program.models import (
    ChatMessage,
    Defaults,
    InputSpec,
    MapNode,
    Program,
    ToolNode,
)
from taskloom.program.source_map import SourceMap, SpecPath
from taskloom.program.spec_model import NodeBase


def bundle(problems: list[SpecError]) -> SpecError | SpecErrors:
    """One error as itself; several as SpecErrors, in the order they appear in the file."""
    if len(problems) == 1:
        return problems[0]
    return SpecErrors(sorted(problems, key=_position_key))


def _position_key(error: SpecError) -> tuple[int, int]:
    if error.location is None:
        return (0, 0)
    return (error.location.line, error.location.column)


def not_a_mapping(data: Any, source: SourceMap) -> SpecError:
    """The error for a spec whose top level is empty or not a mapping."""
    if data is None:
        return SpecError(
            "the spec is empty",
            location=source.locate(()),
            hint="a spec is a mapping with at least `name:` and `nodes:`",
        )
    return SpecError(
        f"the spec must be a mapping of fields, but its top level is a {_yaml_type(data)}",
        location=source.locate(()),
        hint="start the file with `name: ...` and `nodes: ...` at column 1",
    )


def _yaml_type(value: Any) -> str:
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "mapping"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return "null" if value is None else type(value).__name__


# ---------------------------------------------------------------- validation errors

_MODEL_LABELS: dict[type[BaseModel], str] = {
    Program: "the program",
    InputSpec: "an input",
    Defaults: "`defaults`",
    ChatMessage: "a message",
}


def _label(model: type[BaseModel]) -> str:
    """How an error names the thing a model reads: `a map node`, `the program`."""
    if issubclass(model, NodeBase):
        kind = model.model_fields["kind"].default
        return f"{'an' if str(kind)[:1] in 'aeiou' else 'a'} {kind} node"
    return _MODEL_LABELS.get(model, model.__name__)


_MISSING_HINTS: dict[tuple[type[BaseModel], str], str] = {
    (Program, "name"): "give the program a name: `name: my_program`",
    (Program, "nodes"): "add `nodes:`, a mapping from node id to node",
    (ToolNode, "tool"): "name the tool to call, e.g. `tool: calculator`",
    (MapNode, "over"): 'give the list to iterate, e.g. `over: "{{ inputs.cities }}"`',
    (MapNode, "node"): "give the node to run per item, e.g. `node: {kind: llm, prompt: ...}`",
    (ChatMessage, "role"): "add `role: user` (or system, assistant)",
    (ChatMessage, "content"): "add `content:` with the message text",
}


def translate(error: ErrorDetails, data: Any, source: SourceMap) -> SpecError:
    """One Pydantic error as a SpecError located at the value (or key) it is about."""
    path = _data_path(error["loc"], data)
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_field(path, data, source)
    if kind == "missing":
        return _missing_field(path, data, source)
    if kind == "union_tag_invalid":
        return _unknown_kind(path, error, source)
    if kind == "union_tag_not_found" or (kind == "model_attributes_type" and _is_node_path(path)):
        return _missing_kind(path, data, source)
    if kind == "value_error" and path == ("nodes",):
        return _bad_node_id(error, source)
    return _wrong_value(path, error, source)


def _data_path(loc: tuple[int | str, ...], data: Any) -> SpecPath:
    """Follow Pydantic's loc through the data, dropping the union tags it inserts."""
    path: list[str | int] = []
    current = data
    tag_skipped = False
    for position, part in enumerate(loc):
        is_last = position == len(loc) - 1
        if isinstance(current, dict) and not tag_skipped and current.get("kind") == part:
            tag_skipped = True
            continue
        if _has_child(current, part):
            current, tag_skipped = current[part], False
        elif not is_last:
            continue  # a tag or validator step that names no value
        else:
            current = None
        path.append(part)
    return tuple(path)


def _node_of(path: SpecPath) -> str | None:
    if len(path) >= 2 and path[0] == "nodes":
        return str(path[1])
    return None


def _is_node_path(path: SpecPath) -> bool:
    """A node (`nodes.<id>`) or a map's body (`nodes.<id>.node`)."""
    return _node_of(path) is not None and (len(path) == 2 or path[2:] == ("node",))


def _unknown_field(path: SpecPath, data: Any, source: SourceMap) -> SpecError:
    name = str(path[-1])
    model = _model_at(path[:-1], data)
    hint = None
    if model is not None:
        fields = _field_names(model)
        hint = did_you_mean(name, fields) or (
            f"the fields of {_label(model)} are: {', '.join(fields)}"
        )
    return SpecError(
        f"unknown field '{name}'", location=source.locate_key(path), node=_node_of(path), hint=hint
    )


def _missing_field(path: SpecPath, data: Any, source: SourceMap) -> SpecError:
    name = str(path[-1])
    model = _model_at(path[:-1], data)
    label = _label(model) if model else "this mapping"
    hint = _MISSING_HINTS.get((model, name)) if model else None
    return SpecError(
        f"missing required field '{name}' in {label}",
        location=source.locate(path),
        node=_node_of(path),
        hint=hint or f"add `{name}:`",
    )


def _unknown_kind(path: SpecPath, error: ErrorDetails, source: SourceMap) -> SpecError:
    tag = str((error.get("ctx") or {}).get("tag", ""))
    hint = did_you_mean(tag, _node_kinds()) or ""
    hint = f"{hint} a node's kind is one of: {', '.join(_node_kinds())}".strip()
    return SpecError(
        f"unknown node kind '{tag}'",
        location=source.locate((*path, "kind")),
        node=_node_of(path),
        hint=hint,
    )


def _node_kinds() -> list[str]:
    """The kinds a spec may use: whatever is registered (`taskloom.program.kinds`)."""
    return node_models.names()


def _missing_kind(path: SpecPath, data: Any, source: SourceMap) -> SpecError:
    value = _value_at(path, data)
    if not isinstance(value, dict):
        return SpecError(
            f"a node must be a mapping with a `kind`, not a {_yaml_type(value)}",
            location=source.locate(path),
            node=_node_of(path),
            hint="write it as `kind: llm` plus `prompt: ...` on indented lines",
        )
    guess = (
        "tool" if "tool" in value else "map" if "over" in value
        else "plan" if "question" in value else "llm"
    )
    return SpecError(
        "the node has no `kind`",
        location=source.locate_key(path),
        node=_node_of(path),
        hint=f"add `kind: {guess}` (a node's kind is one of: {', '.join(_node_kinds())})",
    )


def _bad_node_id(error: ErrorDetails, source: SourceMap) -> SpecError:
    message = _clean_message(error["msg"])
    match = re.search(r"node id '([^']*)'", message)
    node_id = match.group(1) if match else None
    path: SpecPath = ("nodes", node_id) if node_id is not None else ("nodes",)
    return SpecError(
        message,
        location=source.locate_key(path),
        node=node_id,
        hint="node ids are referenced in templates, so they must be plain names",
    )


def _wrong_value(path: SpecPath, error: ErrorDetails, source: SourceMap) -> SpecError:
    name = str(path[-1]) if path else "spec"
    got = error.get("input")
    hint = None
    if error["type"] == "literal_error":
        expected = re.findall(r"'([^']*)'", str((error.get("ctx") or {}).get("expected", "")))
        hint = did_you_mean(str(got), expected)
    if hint is None and error["type"].endswith(("_type", "_parsing")):
        hint = f"got the {_yaml_type(got)} {_preview(got)}"
    return SpecError(
        f"'{name}': {_clean_message(error['msg'])}",
        location=source.locate(path),
        node=_node_of(path),
        hint=hint,
    )


def _clean_message(message: str) -> str:
    return message.removeprefix("Value error, ")


def _preview(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------- which model is where


def _value_at(path: SpecPath, data: Any) -> Any:
    current = data
    for part in path:
        if not _has_child(current, part):
            return None
        current = current[part]
    return current


def _has_child(value: Any, part: str | int) -> bool:
    if isinstance(value, dict):
        return part in value
    return isinstance(value, list) and isinstance(part, int) and 0 <= part < len(value)


def _model_at(path: SpecPath, data: Any) -> type[BaseModel] | None:
    """The model class that validates the mapping at `path` (by its `kind` for nodes)."""
    annotation: Any = Program
    value = data
    for part in path:
        model = _as_model(annotation, value)
        if model is not None:
            field_info = _field_by_key(model, str(part))
            if field_info is None:
                return None
            annotation = field_info.annotation
        else:
            annotation = _container_item(annotation)
            if annotation is None:
                return None
        value = _value_at((part,), value)
    return _as_model(annotation, value)


def _field_names(model: type[BaseModel]) -> list[str]:
    return [info.alias or name for name, info in model.model_fields.items()]


def _field_by_key(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if key in (name, info.alias):
            return info
    return None


def _as_model(annotation: Any, value: Any) -> type[BaseModel] | None:
    candidates = [a for a in _union_members(annotation) if _is_model(a)]
    kind = value.get("kind") if isinstance(value, dict) else None
    if candidates == [NodeBase]:  # a node of any registered kind: its kind says which
        return node_models.model_for(kind) if isinstance(kind, str) else None
    if len(candidates) == 1:
        return typing.cast(type[BaseModel], candidates[0])
    for candidate in candidates:
        kind_field = candidate.model_fields.get("kind")
        if kind_field is not None and kind_field.default == kind:
            return typing.cast(type[BaseModel], candidate)
    return None


def _container_item(annotation: Any) -> Any:
    for member in _union_members(annotation):
        origin = typing.get_origin(member)
        if origin is dict:
            return typing.get_args(member)[1]
        if origin is list:
            return typing.get_args(member)[0]
    return None


def _union_members(annotation: Any) -> list[Any]:
    if typing.get_origin(annotation) is typing.Annotated:
        return _union_members(typing.get_args(annotation)[0])
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        members: list[Any] = []
        for arg in typing.get_args(annotation):
            members.extend(_union_members(arg))
        return members
    return [annotation]


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)
