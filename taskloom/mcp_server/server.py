"""`taskloom mcp`'s server: each program is an MCP tool, and every call runs through one
runtime (one engine, one scheduler per policy), as many at once as clients send.

The runtime opens beside the protocol, so that a client's `initialize` is answered at
once while the engine starts; a call waits until it is ready.
"""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any

import anyio
import mcp_types
from anyio.streams.memory import MemoryObjectReceiveStream
from mcp.server import Server, ServerRequestContext

from taskloom.cli_render import strict_json
from taskloom.errors import SpecError, SpecErrors, TaskloomError, root_cause
from taskloom.mcp_server.programs import ProgramTool
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.inputs import InputError, resolve_inputs
from taskloom.orchestrator.result import NodeStatus, RunResult, RunStatus
from taskloom.runtime import Runtime

RuntimeOpener = Callable[[], AbstractAsyncContextManager[Runtime]]
_FINISHED = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED)


class RuntimeSlot:
    """The runtime every call shares, once it is open (or why it could not open)."""

    def __init__(self) -> None:
        self._ready = anyio.Event()
        self._runtime: Runtime | None = None
        self._failure: str | None = None

    def fill(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._ready.set()

    def fail(self, reason: str) -> None:
        self._failure = reason
        self._ready.set()

    async def get(self) -> Runtime:
        await self._ready.wait()
        if self._runtime is None:
            raise TaskloomError(self._failure or "the runtime is closed")
        return self._runtime

    async def keep_open(self, open_runtime: RuntimeOpener, closing: anyio.Event) -> None:
        """Open the runtime, offer it until `closing` is set, then close it."""
        try:
            async with open_runtime() as runtime:
                self.fill(runtime)
                await closing.wait()
        except Exception as exc:
            self.fail(f"the engine did not start: {exc}")
        finally:
            self._runtime = None


class ProgramServer:
    """The MCP side of the programs: list them, and run one per call."""

    def __init__(self, tools: Mapping[str, ProgramTool], runtime: RuntimeSlot) -> None:
        self.tools = dict(tools)
        self.runtime = runtime

    def build(self, name: str = "taskloom") -> Server[Any]:
        return Server(name, on_list_tools=self._list_tools, on_call_tool=self._call_tool)

    async def _list_tools(
        self, ctx: ServerRequestContext[Any], params: mcp_types.PaginatedRequestParams | None
    ) -> mcp_types.ListToolsResult:
        return mcp_types.ListToolsResult(tools=[
            mcp_types.Tool(name=tool.name, description=tool.description,
                           input_schema=tool.input_schema(), output_schema=tool.output_schema())
            for tool in self.tools.values()
        ])

    async def _call_tool(
        self, ctx: ServerRequestContext[Any], params: mcp_types.CallToolRequestParams
    ) -> mcp_types.CallToolResult:
        tool = self.tools.get(params.name)
        if tool is None:
            return _error(unknown_name_message("program", params.name, self.tools))
        try:
            runtime = await self.runtime.get()
            result = await _run_reporting(runtime, tool, params.arguments or {}, ctx)
        except InputError as exc:
            return _error(f"bad arguments for '{tool.name}': {exc}")
        except (SpecError, SpecErrors) as exc:
            return _error(f"program '{tool.name}' cannot run: {exc}")
        except TaskloomError as exc:
            return _error(f"program '{tool.name}' cannot run: {exc}")
        return _tool_result(result)


async def _run_reporting(
    runtime: Runtime, tool: ProgramTool, arguments: dict[str, Any], ctx: ServerRequestContext[Any]
) -> RunResult:
    """Run the program, with a progress notification as each of its nodes finishes."""
    inputs = resolve_inputs(tool.program, arguments)  # refused before anything starts
    send, receive = anyio.create_memory_object_stream[NodeEvent](math.inf)
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(_report_progress, receive, len(tool.program.nodes), ctx)
            with send:
                result = await runtime.run(tool.program, inputs, on_event=send.send_nowait)
    except ExceptionGroup as failed:
        raise root_cause(failed) from None
    return result


async def _report_progress(
    events: MemoryObjectReceiveStream[NodeEvent], total: int, ctx: ServerRequestContext[Any]
) -> None:
    finished = 0
    async with events:
        async for event in _top_level_endings(events):
            finished += 1
            message = f"{event.node_id} {event.status.value}"
            try:
                await ctx.session.report_progress(finished, total, message)
            except Exception:  # a client that went away: the run itself goes on
                return


async def _top_level_endings(
    events: MemoryObjectReceiveStream[NodeEvent],
) -> AsyncIterator[NodeEvent]:
    async for event in events:
        if event.parent is None and event.status in _FINISHED:
            yield event


def _tool_result(result: RunResult) -> mcp_types.CallToolResult:
    text = strict_json(result.outputs)
    outputs = json.loads(text)
    if result.status is RunStatus.SUCCEEDED:
        return mcp_types.CallToolResult(
            content=[mcp_types.TextContent(text=text)], structured_content=outputs
        )
    failed = {node_id: node.error for node_id, node in result.nodes.items()
              if node.status is NodeStatus.FAILED}
    summary = {"run_id": result.run_id, "status": result.status.value, "error": result.error,
               "failed_nodes": failed, "outputs": outputs}
    return _error(strict_json(summary))


def _error(message: str) -> mcp_types.CallToolResult:
    return mcp_types.CallToolResult(content=[mcp_types.TextContent(text=message)], is_error=True)
