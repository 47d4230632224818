"""Checking a run's inputs against the program's declared, typed inputs."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping
from typing import Any

import jsonschema

from taskloom.errors import TaskloomError
from taskloom.naming import did_you_mean
from taskloom.program import schemas
from taskloom.program.models import Program


class InputError(TaskloomError):
    """The inputs given to a run do not match what the program declares."""


class NotStrictJson(ValueError):
    """Text that strict JSON (RFC 8259: no NaN, no Infinity) does not parse."""


def decode_json_value(text: str, source: str) -> Any:
    """Parse `text` as strict JSON.

    Raises NotStrictJson when `text` is not JSON at all (a caller may then take it as
    plain text), and InputError when it is JSON that no run can use: a number beyond
    Python's integer-string limit or a float's range, or nesting deeper than the
    parser's recursion allows. `source` names where the text came from, for messages.
    """
    try:
        return json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
            parse_int=_bounded_int,
        )
    except json.JSONDecodeError as exc:
        raise NotStrictJson(str(exc)) from None
    except _OutOfRange as exc:
        raise InputError(f"{source}: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: the JSON is nested too deeply") from None


def decode_json_object(data: bytes, source: str) -> dict[str, Any]:
    """A JSON file of inputs: UTF-8 text holding one strict JSON object."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{source} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        loaded = decode_json_value(text, source)
    except NotStrictJson as exc:
        raise InputError(f"{source} is not JSON: {exc}") from None
    if not isinstance(loaded, dict):
        raise InputError(f"{source} must hold a JSON object, not {type(loaded).__name__}")
    return loaded


def resolve_inputs(program: Program, given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply defaults, refuse unknown or missing inputs, and type-check each value."""
    declared = program.inputs
    problems: list[str] = []
    for name in given:
        if name not in declared:
            hint = did_you_mean(name, declared)
            suggestion = f" ({hint})" if hint else ""
            problems.append(f"unknown input '{name}'{suggestion}; declared: {sorted(declared)}")
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif spec.default is not None:
            value = spec.default
        else:
            problems.append(f"missing input '{name}' ({spec.type}); pass it with -i {name}=...")
            continue
        if _has_non_finite(value):
            # jsonschema counts NaN and Infinity as numbers; JSON, and every consumer of
            # a run's JSON, does not.
            problems.append(f"input '{name}': NaN and Infinity are not JSON numbers")
            continue
        try:
            schemas.validate(value, spec.json_schema())
        except jsonschema.ValidationError as exc:
            problems.append(f"input '{name}': {exc.message}")
            continue
        resolved[name] = value
    if problems:
        raise InputError("; ".join(problems))
    return resolved


class _OutOfRange(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise NotStrictJson(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _OutOfRange(f"the number {_shortened(text)} is beyond a float's range")
    return value


def _bounded_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    limit = sys.get_int_max_str_digits()
    if limit and digits > limit:
        raise _OutOfRange(f"an integer of {digits} digits is over the limit of {limit} digits")
    return int(text)


def _shortened(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:20]}…"


def _has_non_finite(value: Any) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, Mapping):
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False
