"""Checking a run's inputs against the program's declared, typed inputs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jsonschema

from taskloom.errors import TaskloomError
from taskloom.naming import did_you_mean
from taskloom.program import schemas
from taskloom.program.models import Program


class InputError(TaskloomError):
    """The inputs given to a run do not match what the program declares."""


def resolve_inputs(program: Program, given: Mapping[str, Any]) -> dict[str, Any]:
    """Apply defaults, refuse unknown or missing inputs, and type-check each value."""
    declared = program.inputs
    problems: list[str] = []
    for name in given:
        if name not in declared:
            hint = did_you_mean(name, declared)
            hint = f" ({hint})" if hint else ""
            problems.append(f"unknown input '{name}'{hint}; declared: {sorted(declared)}")
    resolved: dict[str, Any] = {}
    for name, spec in declared.items():
        if name in given:
            value = given[name]
        elif spec.default is not None:
            value = spec.default
        else:
            problems.append(f"missing input '{name}' ({spec.type}); pass it with -i {name}=...")
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
