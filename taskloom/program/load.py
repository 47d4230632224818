"""YAML specs to Programs, with every error pointing at a file, line and column.

PyYAML's composer keeps a mark for every node, so the loader first indexes where each
value sits, then lets Pydantic validate the plain data, and finally translates each
validation error's `loc` back to a YAML path (and so to a line) with a hint.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from taskloom.errors import SourceLocation, SpecError, SpecErrors
from taskloom.program.kinds import node_models
from taskloom.program.models import (
    ChatMessage,
    Defaults,
    InputSpec,
    LLMNode,
    MapNode,
    Program,
    ToolNode,
)
from taskloom.program.spec_model import NodeBase

SpecPath = tuple[str | int, ...]
_Position = tuple[int, int]  # 1-based line and column


@dataclass(frozen=True)
class SourceMap:
    """Where each value of a spec was written. Paths are YAML paths such as
    ("nodes", "summary", "prompt"); an unknown path falls back to its nearest parent."""

    file: str
    values: Mapping[SpecPath, _Position] = field(default_factory=dict, repr=False, hash=False)
    keys: Mapping[SpecPath, _Position] = field(default_factory=dict, repr=False, hash=False)

    def locate(self, path: Sequence[str | int]) -> SourceLocation:
        """Where the value at `path` starts; for a missing path, where its parent is named."""
        wanted = _normal(path)
        if wanted in self.values:
            return self._at(self.values[wanted])
        return self._nearest(wanted[:-1])

    def locate_key(self, path: Sequence[str | int]) -> SourceLocation:
        """Where the key naming `path` is written (`summary:`), else as `locate`."""
        wanted = _normal(path)
        if wanted in self.keys:
            return self._at(self.keys[wanted])
        return self.locate(wanted)

    def _nearest(self, path: SpecPath) -> SourceLocation:
        while path:
            position = self.keys.get(path) or self.values.get(path)
            if position is not None:
                return self._at(position)
            path = path[:-1]
        return self._at(self.values.get((), (1, 1)))

    def _at(self, position: _Position) -> SourceLocation:
        return SourceLocation(self.file, position[0], position[1])


def _normal(path: Sequence[str | int]) -> SpecPath:
    # A dict key and a list index never share a parent, so text keys are unambiguous
    # and YAML keys such as `1:` match Pydantic's loc either way.
    return tuple(str(part) for part in path)


def closest_name(word: str, candidates: Iterator[str] | Sequence[str]) -> str | None:
    """The candidate a typo most likely meant, or None."""
    matches = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return matches[0] if matches else None


def did_you_mean(word: str, candidates: Iterator[str] | Sequence[str]) -> str | None:
    """A hint sentence for a misspelt name, or None when nothing is close."""
    match = closest_name(word, candidates)
    return f"did you mean '{match}'?" if match else None


# ---------------------------------------------------------------- entry points


def load(path: str | Path) -> Program:
    """Load a program from a YAML file; raises SpecError or SpecErrors."""
    spec_path = Path(path)
    try:
        text = spec_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(
            f"spec file not found: {spec_path}",
            hint="check the path; it is relative to the current directory",
        ) from None
    except IsADirectoryError:
        raise SpecError(
            f"spec path is a directory, not a file: {spec_path}",
            hint="point at the .yaml file inside it",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SpecError(f"cannot read spec file {spec_path}: {exc}") from None
    return loads(text, filename=str(spec_path))


def loads(text: str, filename: str = "<string>") -> Program:
    """Load a program from YAML text; `filename` is only used in error locations."""
    data, source, problems = _parse_yaml(text, filename)
    if not isinstance(data, dict):
        raise _not_a_mapping(data, source)
    try:
        program = Program.model_validate(data)
    except ValidationError as exc:
        problems.extend(_translate(error, data, source) for error in exc.errors())
    if problems:
        raise _bundle(problems)
    program._source = source
    return program


def _bundle(problems: list[SpecError]) -> SpecError | SpecErrors:
    if len(problems) == 1:
        return problems[0]
    return SpecErrors(sorted(problems, key=_position_key))


def _position_key(error: SpecError) -> tuple[int, int]:
    if error.location is None:
        return (0, 0)
    return (error.location.line, error.location.column)


def _not_a_mapping(data: Any, source: SourceMap) -> SpecError:
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


# ---------------------------------------------------------------- YAML


def _parse_yaml(text: str, filename: str) -> tuple[Any, SourceMap, list[SpecError]]:
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        # Duplicates are found before construction, which flattens `<<` merges in place.
        duplicates = _duplicate_keys(root, filename) if root is not None else []
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(exc, filename) from None
    except yaml.YAMLError as exc:
        raise SpecError(f"invalid YAML: {exc}", location=SourceLocation(filename, 1, 1)) from None
    finally:
        loader.dispose()
    return data, _index_positions(root, filename), duplicates


def _yaml_error(exc: yaml.MarkedYAMLError, filename: str) -> SpecError:
    mark = exc.problem_mark or exc.context_mark
    location = SourceLocation(filename, mark.line + 1, mark.column + 1) if mark else None
    problem = exc.problem or exc.context or "cannot parse"
    if exc.context and problem.startswith("but "):
        # PyYAML splits "expected X, but found Y" across context and problem.
        problem = f"{exc.context}, {problem}"
    return SpecError(f"invalid YAML: {problem}", location=location, hint=_yaml_hint(exc))


def _yaml_hint(exc: yaml.MarkedYAMLError) -> str:
    problem = f"{exc.problem or ''} {exc.context or ''}"
    if "unhashable key" in problem or "found unexpected '{'" in problem:
        return 'a value that starts with "{{" must be quoted: prompt: "{{ inputs.topic }}"'
    if "'\\t'" in problem or "tab" in problem:
        return "YAML does not allow tabs for indentation; use spaces"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted, or written as a block with '|'"
    if "expected a single document" in problem:
        return "a spec file holds one program; remove the extra '---'"
    return "check the indentation and quoting around this line"


def _duplicate_keys(root: yaml.Node, filename: str) -> list[SpecError]:
    found: list[SpecError] = []
    for mapping in _mappings(root, set()):
        seen: set[str] = set()
        for key_node, _ in mapping.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                mark = key_node.start_mark
                found.append(
                    SpecError(
                        f"duplicate key '{key_node.value}'",
                        location=SourceLocation(filename, mark.line + 1, mark.column + 1),
                        hint="YAML keeps only the last one; rename or remove one of them",
                    )
                )
            seen.add(key_node.value)
    return found


def _mappings(node: yaml.Node, visiting: set[int]) -> Iterator[yaml.MappingNode]:
    if id(node) in visiting:  # recursive aliases
        return
    visiting.add(id(node))
    if isinstance(node, yaml.MappingNode):
        yield node
        for key_node, value_node in node.value:
            yield from _mappings(key_node, visiting)
            yield from _mappings(value_node, visiting)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _mappings(item, visiting)


def _index_positions(root: yaml.Node | None, filename: str) -> SourceMap:
    values: dict[SpecPath, _Position] = {}
    keys: dict[SpecPath, _Position] = {}

    def visit(node: yaml.Node, path: SpecPath, stack: frozenset[int]) -> None:
        if id(node) in stack:
            return
        values[path] = _position(node)
        inner = stack | {id(node)}
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode):
                    child = (*path, str(key_node.value))
                    keys.setdefault(child, _position(key_node))
                    visit(value_node, child, inner)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                visit(item, (*path, str(index)), inner)

    if root is not None:
        visit(root, (), frozenset())
    return SourceMap(file=filename, values=values, keys=keys)


def _position(node: yaml.Node) -> _Position:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


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
    LLMNode: "an llm node",
    ToolNode: "a tool node",
    MapNode: "a map node",
}

_MISSING_HINTS: dict[tuple[type[BaseModel], str], str] = {
    (Program, "name"): "give the program a name: `name: my_program`",
    (Program, "nodes"): "add `nodes:`, a mapping from node id to node",
    (ToolNode, "tool"): "name the tool to call, e.g. `tool: calculator`",
    (MapNode, "over"): 'give the list to iterate, e.g. `over: "{{ inputs.cities }}"`',
    (MapNode, "node"): "give the node to run per item, e.g. `node: {kind: llm, prompt: ...}`",
    (ChatMessage, "role"): "add `role: user` (or system, assistant)",
    (ChatMessage, "content"): "add `content:` with the message text",
}


def _translate(error: ErrorDetails, data: Any, source: SourceMap) -> SpecError:
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
            f"the fields of {_MODEL_LABELS.get(model, model.__name__)} are: {', '.join(fields)}"
        )
    return SpecError(
        f"unknown field '{name}'", location=source.locate_key(path), node=_node_of(path), hint=hint
    )


def _missing_field(path: SpecPath, data: Any, source: SourceMap) -> SpecError:
    name = str(path[-1])
    model = _model_at(path[:-1], data)
    label = _MODEL_LABELS.get(model, "this mapping") if model else "this mapping"
    hint = _MISSING_HINTS.get((model, name)) if model else None
    return SpecError(
        f"missing required field '{name}' in {label}",
        location=source.locate(path),
        node=_node_of(path),
        hint=hint or f"add `{name}:`",
    )


def _unknown_kind(path: SpecPath, error: ErrorDetails, source: SourceMap) -> SpecError:
    tag = str((error.get("ctx") or {}).get("tag", ""))
    hint = did_you_mean(tag, node_models.names()) or ""
    hint = f"{hint} a node's kind is one of: {', '.join(node_models.names())}".strip()
    return SpecError(
        f"unknown node kind '{tag}'",
        location=source.locate((*path, "kind")),
        node=_node_of(path),
        hint=hint,
    )


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
        hint=f"add `kind: {guess}` (a node's kind is one of: {', '.join(node_models.names())})",
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
