"""The programs `taskloom mcp` offers: each spec in a folder is one MCP tool, named after
its file, whose arguments are the program's inputs."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskloom.errors import SpecError, SpecErrors
from taskloom.program.load import load
from taskloom.program.models import Program
from taskloom.serve.programs import named_programs


@dataclass(frozen=True)
class ProgramTool:
    """One program, as the MCP tool that runs it."""

    name: str
    program: Program

    @property
    def description(self) -> str:
        return self.program.description or f"Runs the taskloom program '{self.program.name}'."

    def input_schema(self) -> dict[str, Any]:
        """The program's inputs as a JSON object schema; an input without a default is
        required."""
        properties: dict[str, Any] = {}
        for name, spec in self.program.inputs.items():
            schema = spec.json_schema()
            if spec.description:
                schema["description"] = spec.description
            if spec.default is not None:
                schema["default"] = spec.default
            properties[name] = schema
        required = [n for n, spec in self.program.inputs.items() if spec.default is None]
        return {"type": "object", "properties": properties, "required": required}

    def output_schema(self) -> dict[str, Any]:
        """The outputs are one object, keyed by the program's output names."""
        return {
            "type": "object",
            "properties": {name: {} for name in self.program.outputs},
        }


def program_tools(folder: Path) -> tuple[dict[str, ProgramTool], list[str]]:
    """The valid programs in `folder` by name, and one line per spec that is not valid."""
    tools: dict[str, ProgramTool] = {}
    problems: list[str] = []
    for name, named in named_programs(folder).items():
        try:
            tools[name] = ProgramTool(name, load(named.path))
        except (SpecError, SpecErrors) as exc:
            problems.append(f"skipped {named.path}: {str(exc).splitlines()[0]}")
    return tools, problems
