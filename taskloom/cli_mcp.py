"""MCP on the command line: the servers a spec declares, as `validate`, `run` and `graph`
see them, and `taskloom mcp`, which serves programs as MCP tools."""

from __future__ import annotations

import functools
import os
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Annotated

import anyio
import typer

from taskloom.backends.factory import (
    BackendName,
    BackendSettingsError,
    backend_name,
    check_base_url,
)
from taskloom.cli_runs import fail
from taskloom.errors import SourceLocation, SpecError, SpecErrors
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY, UnknownPolicy, check_policy
from taskloom.program.models import Program
from taskloom.program.source_map import SourceMap
from taskloom.runtime import Runtime, spec_folder
from taskloom.serve.config import is_loopback
from taskloom.tools.registry import Tool, ToolRegistry, default_registry
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
    """`MCP server 'NAME' (stdio: CMD): N tools`, then one `NAME.TOOL(a, b?)` a line."""
    config = program.mcp_servers[tool_set.source]
    head = (f"MCP server '{tool_set.source}' ({config.transport}: {config.describe()}): "
            f"{len(tool_set.tools)} tools")
    return "\n".join([head, *(f"  {_signature(tool_set.tools[name])}"
                              for name in sorted(tool_set.tools))])


def _signature(tool: Tool) -> str:
    properties = tool.input_schema.get("properties") or {}
    required = set(tool.input_schema.get("required") or [])
    args = ", ".join(f"{name}{'' if name in required else '?'}" for name in properties)
    first_line = tool.description.strip().splitlines()[0] if tool.description.strip() else ""
    return f"{tool.name}({args})" + (f": {first_line}" if first_line else "")


def _locate(program: Program, path: tuple[str | int, ...]) -> SourceLocation | None:
    source = getattr(program, "_source", None)
    return source.locate(path) if isinstance(source, SourceMap) else None


def mcp(
    specs: Annotated[Path, typer.Option(help="Folder of programs (*.yaml); each is one tool, "
                                        "named after its file.")],
    http: Annotated[int | None, typer.Option(
        "--http", min=0, help="Serve streamable HTTP on this port (at /mcp) instead of "
        "stdio.")] = None,
    host: Annotated[str, typer.Option(help="Address for --http (loopback only: the "
                                      "protocol has no API keys here).")] = "127.0.0.1",
    backend: Annotated[str, typer.Option(
        help="Engine: " + ", ".join(b.value for b in BackendName))] = "vllm",
    model: Annotated[str | None, typer.Option(help="Model path or name.")] = None,
    base_url: Annotated[str | None, typer.Option(help="Server URL for --backend openai.")
                        ] = None,
    policy: Annotated[str, typer.Option(help="Scheduling policy of every call.")
                      ] = DEFAULT_POLICY,
    tools_root: Annotated[Path, typer.Option(help="Folder read_file may read.")] = Path("."),
    allow_host: Annotated[list[str] | None, typer.Option(
        help="A host http_get may fetch (repeatable).")] = None,
) -> None:
    """Serve the programs in --specs as MCP tools: stdio by default, or --http PORT.

    A tool's arguments are the program's inputs and its result the outputs (structured
    content); a progress notification is sent as each node finishes. Calls run at once,
    through one engine and one scheduler."""
    try:
        name = backend_name(backend)
        check_base_url(name, base_url)
        check_policy(policy)
    except (BackendSettingsError, UnknownPolicy) as exc:
        raise fail(str(exc)) from None
    if not specs.is_dir():
        raise fail(f"--specs {specs} is not a folder")
    if http is not None and not is_loopback(host):
        raise fail(f"refusing to serve MCP on {host}: it has no API keys; bind to 127.0.0.1")
    # Lazy: the MCP SDK takes about a second to import, which the other commands
    # (`validate` above all) should not pay.
    from taskloom.mcp_server import (
        ProgramServer,
        RuntimeSlot,
        program_tools,
        serve_http,
        serve_stdio,
    )

    found, problems = program_tools(specs)
    for line in problems:
        typer.echo(line, err=True)
    tools = default_registry(root=tools_root, allowed_hosts=allow_host or ())
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")

    def open_runtime() -> AbstractAsyncContextManager[Runtime]:
        return Runtime.open(name, model=model, base_url=base_url, tools=tools, policy=policy)

    programs = ProgramServer(found, RuntimeSlot())
    if http is None:
        anyio.run(serve_stdio, programs, open_runtime, backend="asyncio")
    else:
        typer.echo(f"serving {len(found)} programs at http://{host}:{http}/mcp", err=True)
        anyio.run(functools.partial(serve_http, programs, open_runtime, host=host, port=http),
                  backend="asyncio")
