"""Reference paths walked into JSON schemas: what a `{{ node.field[0] }}` can reach,
known before the run from output schemas and input types."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from taskloom.program.refs import RefPath

JsonSchema = dict[str, Any]


@dataclass(frozen=True)
class FieldProblem:
    """Why a reference path cannot exist in a value of the declared schema."""

    depth: int  # index of the offending key in the reference path
    message: str
    candidates: tuple[str, ...] = ()


def schema_at(schema: JsonSchema, keys: RefPath) -> JsonSchema | FieldProblem | None:
    """Walk `keys` into a schema: the schema reached, a problem, or None (unknown)."""
    for position, key in enumerate(keys):
        step = _step_into(schema, key)
        if isinstance(step, str):
            return FieldProblem(position, step, _property_names(schema))
        if step is None:
            return None
        schema = step
    return schema


def _step_into(schema: JsonSchema, key: str | int) -> JsonSchema | str | None:
    kind = schema.get("type")
    properties = schema.get("properties")
    if isinstance(key, int):
        if kind == "array":
            items = schema.get("items")
            return items if isinstance(items, dict) and items else None
        if kind in ("object", "integer", "number", "boolean"):
            return f"is {article(kind)} {kind}, not a list, so it has no item [{key}]"
        return None  # strings index by character; untyped is unknown
    if kind == "object" or (kind is None and isinstance(properties, dict)):
        if not isinstance(properties, dict):
            return None
        if key in properties:
            target = properties[key]
            return target if isinstance(target, dict) and target else None
        if schema.get("additionalProperties") not in (None, False):
            return None
        return f"has no field '{key}'"
    if kind in ("string", "integer", "number", "boolean", "array"):
        return f"is {article(kind)} {kind}, so it has no field '{key}'"
    return None


def _property_names(schema: JsonSchema) -> tuple[str, ...]:
    properties = schema.get("properties")
    return tuple(properties) if isinstance(properties, dict) else ()


def article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def format_reference(path: RefPath) -> str:
    """`("outline", "sections", 0)` -> `outline.sections[0]`."""
    text = str(path[0])
    for part in path[1:]:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text
