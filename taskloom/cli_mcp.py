"""MCP on the command line: the servers a spec declares, as `validate`, `run` and `graph`
see them, and `taskloom mcp`, which serves programs as MCP tools."""

from __future__ import annotations

from pathlib import Path

import anyio

from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.tool_catalog import tool_signature_hint
from taskloom.program.models import Program
from taskloom.errors import SourceLocation
from taskloom.program.source_map import SourceMap
from taskloom.runtime import spec_folder
from taskloom.tools.registry import ToolRegistry
from taskloom.tools.sources.base import ToolSet
from taskloom.tools.sources.declared import ReachedSources, reach_declared, unchecked_sets

_TRUSTED = "checked when the run opens its server"


def with_declared_servers(
    program: Program, tools: ToolRegistry, *, reach: bool, offline: bool = False
) -> tuple[ToolRegistry, list[str]]:
    """`tools` plus the tools of the MCP servers `program` declares, and lines that say
    what each server offers. `reach=False` takes every SERVER.TOOL on trust (the run
    checks them once it has opened the servers). A server that cannot be reached is a
    located spec error, or with `offline` a line saying it was skipped."""
    if not program.mcp_servers:
        return tools, []
    if not reach:
        return tools.with_sources(unchecked_sets(program.mcp_servers, _TRUSTED)), []
    reached = anyio.run(_reach, program)
    errors: list[SpecError] = []
    lines = [describe_tool_set(each, program) for each in reached.tool_sets]
    for name, reason in reached.unreachable.items():
        if offline:
            lines.append(f"skipped MCP server '{name}' (--offline): {reason}; its tools "
                         "were not checked")
        else:
            errors.append(SpecError(reason, location=_locate(program, ("mcp_servers", name)),
                                    hint="start the server, or pass --offline to skip the "
                                         "servers validate cannot reach"))
    if errors:
        raise SpecErrors(errors)
    skipped = unchecked_sets({n: None for n in reached.unreachable}, "skipped (--offline)")
    return tools.with_sources([*reached.tool_sets, *skipped]), lines


async def _reach(program: Program) -> ReachedSources:
    return await reach_declared(program.mcp_servers, base_dir=spec_folder(program))


def describe_tool_set(tool_set: ToolSet, program: Program) -> str:
    config = program.mcp_servers[tool_set.source]
    listed = [f"  {tool_signature_hint(tool).removeprefix('tool ')}"
              for tool in (tool_set.tools[name] for name in sorted(tool_set.tools))]
    head = (f"MCP server '{tool_set.source}' ({config.transport}: {config.describe()}): "
            f"{len(tool_set.tools)} tools")
    return "\n".join([head, *listed])


def _locate(program: Program, path: tuple[str | int, ...]) -> SourceLocation | None:
    source = getattr(program, "_source", None)
    return source.locate(path) if isinstance(source, SourceMap) else None
