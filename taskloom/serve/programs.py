"""The programs a server's clients may run by name: the specs under `--specs`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskloom.errors import SpecError, SpecErrors
from taskloom.program.load import load


@dataclass(frozen=True)
class NamedProgram:
    name: str  # the file name without .yaml
    path: Path

    def describe(self) -> dict[str, Any]:
        try:
            program = load(self.path)
        except (SpecError, SpecErrors) as exc:
            return {"name": self.name, "valid": False, "error": str(exc)}
        return {
            "name": self.name,
            "valid": True,
            "program": program.name,
            "description": program.description,
            "inputs": {k: v.model_dump(mode="json", exclude_none=True)
                       for k, v in program.inputs.items()},
            "nodes": len(program.nodes),
        }


def named_programs(folder: Path | None) -> dict[str, NamedProgram]:
    """Each `*.yaml` / `*.yml` file directly under `folder`, by name."""
    if folder is None:
        return {}
    found: dict[str, NamedProgram] = {}
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        found.setdefault(path.stem, NamedProgram(path.stem, path))
    return found
