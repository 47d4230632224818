"""The plan language, written out: tasks as `N. tool(arg=value)` lines, tool signatures
for prompts, and the JSON schema of a JSON plan.

Everything here writes text that `parser.py` reads back to the same tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from taskloom.planners.base import Interpolation, Observation, Ref, Round, Task
from taskloom.planners.values import as_text
from taskloom.tools.registry import Tool

# `$N` with an optional path, as it appears inside a string: `$2`, `$2.city`, `$2[0]`,
# `$2["k"]`. `$$` is a literal dollar sign.
REF_IN_TEXT = re.compile(
    r"\$\$|\$(?P<task>\d+)(?P<path>(?:\.[A-Za-z_]\w*|\[-?\d+\]|\[\"[^\"\\]*\"\]|\['[^'\\]*'\])*)"
)
_PATH_STEP = re.compile(
    r"\.(?P<attr>[A-Za-z_]\w*)|\[(?P<index>-?\d+)\]|\[[\"'](?P<key>[^\"']*)[\"']\]"
)
# A JSON-plan argument that is one reference and nothing else keeps the value's type.
REF_PATTERN = r"^\$[0-9]+(\.[A-Za-z_][A-Za-z0-9_]*|\[[0-9]+\])*$"

MAX_PLAN_TASKS = 16
# Bounds for structured outputs: a small model repeats itself inside a string or a list
# until max_tokens cuts the plan off, and a cut-off plan does not parse.
JSON_ARGUMENT_MAX_CHARS = 100
JSON_ARGUMENT_MAX_ITEMS = 16


# ---------------------------------------------------------------- references in strings


def parse_path(text: str) -> tuple[str | int, ...]:
    """`.city[0]["k"]` -> ("city", 0, "k")."""
    steps: list[str | int] = []
    for step in _PATH_STEP.finditer(text):
        if step.group("attr") is not None:
            steps.append(step.group("attr"))
        elif step.group("index") is not None:
            steps.append(int(step.group("index")))
        else:
            steps.append(step.group("key"))
    return tuple(steps)


def string_value(text: str) -> str | Ref | Interpolation:
    """A string argument: a lone reference keeps its type, references inside text are
    interpolated, and anything else stays the string it is."""
    parts: list[str | Ref] = []
    position = 0
    for match in REF_IN_TEXT.finditer(text):
        parts.append(text[position : match.start()])
        if match.group(0) == "$$":
            parts.append("$")
        else:
            parts.append(Ref(int(match.group("task")), parse_path(match.group("path"))))
        position = match.end()
    parts.append(text[position:])
    kept = [part for part in _merge_text(parts) if part != ""]
    if not any(isinstance(part, Ref) for part in kept):
        return "".join(str(part) for part in kept)
    if len(kept) == 1:
        return kept[0]
    return Interpolation(tuple(kept))


def _merge_text(parts: list[str | Ref]) -> list[str | Ref]:
    merged: list[str | Ref] = []
    for part in parts:
        if isinstance(part, str) and merged and isinstance(merged[-1], str):
            merged[-1] += part
        else:
            merged.append(part)
    return merged


# ---------------------------------------------------------------- tasks as text


def format_value(value: Any) -> str:
    """An argument value in plan syntax (JSON literals plus bare `$N` references)."""
    if isinstance(value, Ref):
        return str(value)
    if isinstance(value, Interpolation):
        return json.dumps("".join(_escaped_part(p) for p in value.parts), ensure_ascii=False)
    if isinstance(value, str):
        return json.dumps(
            value.replace("$", "$$") if REF_IN_TEXT.search(value) else value, ensure_ascii=False
        )
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k))}: {format_value(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    return json.dumps(value, default=str)


def _escaped_part(part: str | Ref) -> str:
    return str(part) if isinstance(part, Ref) else part.replace("$", "$$")


def format_call(task: Task) -> str:
    args = ", ".join(f"{name}={format_value(value)}" for name, value in task.args.items())
    return f"{task.tool}({args})"


def format_task(task: Task) -> str:
    """`3. search(query="Oslo")`; a task that could not be parsed shows what was written."""
    if task.error is not None and task.source:
        return task.source.strip()
    return f"{task.index}. {format_call(task)}"


def format_observation(observation: Observation) -> str:
    if observation.error is not None:
        return f"ERROR: {observation.error}"
    return as_text(observation.value)


def format_round(round_: Round) -> str:
    """A finished plan with each task's observation under it, as later prompts show it."""
    lines: list[str] = []
    for task in round_.tasks:
        lines.append(format_task(task))
        found = round_.observation(task.index)
        if found is not None:
            lines.append(f"   Observation: {format_observation(found)}")
    if round_.replan_reason:
        lines.append(f"Why a new plan is needed: {round_.replan_reason}")
    return "\n".join(lines)


# ---------------------------------------------------------------- tools in prompts


def format_tools(tools: Sequence[Tool]) -> str:
    """One entry per tool: its call signature, its description and its arguments."""
    return "\n".join(_format_tool(number, tool) for number, tool in enumerate(tools, 1))


def _format_tool(number: int, tool: Tool) -> str:
    schema = tool.input_schema
    properties: dict[str, Any] = schema.get("properties") or {}
    required = set(schema.get("required") or [])
    params = ", ".join(
        f"{name}{'' if name in required else '?'}: {_type_name(spec)}"
        for name, spec in properties.items()
    )
    lines = [f"{number}. {tool.name}({params}): {tool.description}".rstrip(": ")]
    for name, spec in properties.items():
        if spec.get("description"):
            lines.append(f"   - {name}: {spec['description']}")
    return "\n".join(lines)


def _type_name(spec: Mapping[str, Any]) -> str:
    if "type" in spec:
        kind = spec["type"]
        if kind == "array" and isinstance(spec.get("items"), Mapping):
            return f"list of {_type_name(spec['items'])}"
        return str(kind)
    options = spec.get("anyOf") or spec.get("oneOf")
    if isinstance(options, list):
        return " | ".join(_type_name(option) for option in options if isinstance(option, Mapping))
    return "any"


# ---------------------------------------------------------------- JSON plans


def plan_json_schema(tools: Sequence[Tool], max_tasks: int = MAX_PLAN_TASKS) -> dict[str, Any]:
    """`{"tasks": [{"id", "tool", "args"}, ...]}` where each task is one of the tools:
    its name comes from the enum of available tools and its arguments follow that tool's
    schema, except that any argument may instead be a `$N` reference string."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "tasks": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_tasks,
                "items": {"anyOf": [_task_schema(tool) for tool in tools]},
            }
        },
        "required": ["tasks"],
        "additionalProperties": False,
    }
    return with_definitions(schema, tools)


def with_definitions(schema: dict[str, Any], tools: Sequence[Tool]) -> dict[str, Any]:
    """Hoist the tools' `$defs` (nested argument models) to the root, where their `$ref`s
    point."""
    definitions: dict[str, Any] = {}
    for tool in tools:
        definitions.update(tool.input_schema.get("$defs") or {})
    return {**schema, "$defs": definitions} if definitions else schema


def _task_schema(tool: Tool) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1},
            "tool": {"type": "string", "enum": [tool.name]},
            "args": args_schema(tool),
        },
        "required": ["id", "tool", "args"],
        "additionalProperties": False,
    }


def args_schema(tool: Tool, *, allow_references: bool = True) -> dict[str, Any]:
    """The tool's argument schema for structured outputs; with `allow_references`, a
    non-string argument may also be a `$N` string."""
    schema = tool.input_schema
    properties: dict[str, Any] = schema.get("properties") or {}
    shape = _or_reference if allow_references else _plain
    return {
        "type": "object",
        "properties": {name: shape(spec) for name, spec in properties.items()},
        "required": list(schema.get("required") or []),
        "additionalProperties": False,
    }


def _plain(spec: Mapping[str, Any]) -> dict[str, Any]:
    # Descriptions are for the prompt; they only slow down grammar compilation.
    plain = {k: v for k, v in spec.items() if k not in ("description", "default", "title")}
    if plain.get("type") == "string":
        plain.setdefault("maxLength", JSON_ARGUMENT_MAX_CHARS)
    if plain.get("type") == "array":
        plain.setdefault("maxItems", JSON_ARGUMENT_MAX_ITEMS)
    return plain


def _or_reference(spec: Mapping[str, Any]) -> dict[str, Any]:
    plain = _plain(spec)
    items = plain.get("items")
    if plain.get("type") == "array" and isinstance(items, Mapping):
        plain["items"] = _or_reference(items)  # `[$1.score, $2.score]`
    if plain.get("type") == "string":
        return plain  # a string can hold `$N` itself
    return {"anyOf": [plain, {"type": "string", "pattern": REF_PATTERN}]}
