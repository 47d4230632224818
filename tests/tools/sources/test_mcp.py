"""MCP tools in specs, against a real MCP server (tests/mcp_test_server.py, written with
the SDK's MCPServer) that the runtime starts over stdio, or that the test starts over
streamable HTTP. The LLM side is the scripted backend."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
from mcp_harness import http_server, pid_alive, spec_text, stdio_server

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.load import loads
from taskloom.program.mcp_servers import McpServerSpec
from taskloom.runtime import Runtime
from taskloom.tools.sources import SourceConnections


@pytest.fixture
def anyio_backend() -> str:
    # The SDK runs on either; one backend keeps this module's server starts to half.
    return "asyncio"


@pytest.fixture(params=["stdio", "http"])
def server(request: pytest.FixtureRequest) -> Iterator[McpServerSpec]:
    """The test server over each transport; a fresh process for every test."""
    if request.param == "stdio":
        yield stdio_server()
    else:
        with http_server() as running:
            yield running.spec()


@asynccontextmanager
async def runtime(backend: ScriptedBackend | None = None) -> AsyncIterator[Runtime]:
    async with SourceConnections.open() as sources:
        yield Runtime(backend or ScriptedBackend(), sources=sources)


@pytest.mark.anyio
async def test_a_map_of_20_items_calls_the_tool_concurrently(server: McpServerSpec) -> None:
    # Each echo answers only once 20 calls are in flight together (the server counts), so
    # a client that sent them one at a time would see 1 and time out.
    program = loads(spec_text(server, """
inputs:
  words: {type: array, items: {type: string}}
nodes:
  each:
    kind: map
    over: "{{ inputs.words }}"
    node: {kind: tool, tool: t.echo, args: {text: "{{ item }}", wait_for: 20}}
  most: {kind: tool, tool: t.most_in_flight, after: [each]}
outputs:
  echoed: "{{ each }}"
  most: "{{ most.result }}"
"""))
    words = [f"w{i}" for i in range(20)]
    async with runtime() as rt:
        result = await rt.run(program, {"words": words})
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert [item["text"] for item in result.outputs["echoed"]] == words
    assert result.outputs["most"] == 20
    assert all(item["in_flight"] == 20 for item in result.outputs["echoed"])


@pytest.mark.anyio
async def test_a_plan_node_calls_mcp_tools_from_its_catalog(server: McpServerSpec) -> None:
    program = loads(spec_text(server, """
nodes:
  answer:
    kind: plan
    question: "What is 2 + 3, and the weather in Oslo?"
    tools: [t.add, t.weather]
outputs:
  answer: "{{ answer }}"
"""))
    plan = '1. t.add(a=2, b=3)\n2. t.weather(city="Oslo", days=2)\n3. join()\n'
    backend = ScriptedBackend(respond=lambda request: (
        plan if "/plan" in request.call_id.rsplit("/", 1)[0] else "Action: Finish(5, and mild)"
    ))
    async with runtime(backend) as rt:
        result = await rt.run(program)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.outputs["answer"] == "5, and mild"
    assert result.nodes["answer/plan1/1"].output == {"result": 5}
    assert result.nodes["answer/plan1/2"].output == {"city": "Oslo", "days": 2,
                                                     "temperature_c": 14}
    planner_prompt = _text(backend.seen[0])
    assert "t.add" in planner_prompt and "Add two integers" in planner_prompt
    assert "t.weather" in planner_prompt


def _text(request: GenerateRequest) -> str:
    return "\n".join(m.content for m in request.messages or []) + (request.prompt or "")


@pytest.mark.anyio
async def test_is_error_becomes_a_node_error_and_content_becomes_output(
    server: McpServerSpec,
) -> None:
    program = loads(spec_text(server, """
nodes:
  bad: {kind: tool, tool: t.fail, args: {reason: the moon is down}}
  structured: {kind: tool, tool: t.weather, args: {city: Lima}}
  text: {kind: tool, tool: t.plain, args: {text: hi}}
"""))
    async with runtime() as rt:
        result = await rt.run(program)
    assert result.status is RunStatus.FAILED
    bad = result.nodes["bad"]
    assert bad.status is NodeStatus.FAILED
    # The text after the colon is the server's own (FastMCP prefixes the tool's message).
    assert bad.error is not None
    assert bad.error.startswith("MCP tool 't.fail' returned an error: ")
    assert bad.error.endswith("the moon is down")
    assert result.nodes["structured"].output == {"city": "Lima", "days": 1, "temperature_c": 14}
    assert result.nodes["text"].output == "plain hi"


@pytest.mark.anyio
async def test_a_server_that_dies_mid_run_fails_its_nodes_and_keeps_the_rest(
    server: McpServerSpec,
) -> None:
    # `crash` ends the server's process while its call is in flight; the nodes that
    # finished before it are kept, and the run's other branch goes on.
    program = loads(spec_text(server, """
nodes:
  first: {kind: tool, tool: t.weather, args: {city: Oslo}}
  boom: {kind: tool, tool: t.crash, after: [first]}
  later: {kind: tool, tool: t.weather, args: {city: Lima}, after: [boom], on_error: skip}
  local: {kind: tool, tool: calculator, args: {expression: "6 * 7"}, after: [boom],
          on_error: skip}
  independent: {kind: tool, tool: calculator, args: {expression: "1 + 1"}}
outputs:
  first: "{{ first.city }}"
  independent: "{{ independent }}"
"""))
    async with runtime() as rt:
        result = await rt.run(program)
    assert result.status is RunStatus.FAILED
    boom = result.nodes["boom"]
    assert boom.status is NodeStatus.FAILED
    assert boom.error is not None and "MCP tool 't.crash'" in boom.error
    assert "closed" in boom.error or "gone" in boom.error
    assert result.nodes["first"].status is NodeStatus.SUCCEEDED
    assert result.outputs == {"first": "Oslo", "independent": 2}


@pytest.mark.anyio
async def test_a_killed_http_server_is_a_clear_node_error() -> None:
    with http_server() as running:
        program = loads(spec_text(running.spec(), """
nodes:
  first: {kind: tool, tool: t.weather, args: {city: Oslo}}
  slow: {kind: tool, tool: t.sleep, args: {seconds: 30}, after: [first]}
  independent: {kind: tool, tool: calculator, args: {expression: "2 + 2"}}
"""))
        def kill_when_slow_starts(event: NodeEvent) -> None:
            if event.node_id == "slow" and event.status is NodeStatus.RUNNING:
                running.kill()

        async with runtime() as rt:
            result = await rt.run(program, on_event=kill_when_slow_starts)
    slow = result.nodes["slow"]
    assert slow.status is NodeStatus.FAILED
    assert slow.error is not None and slow.error.startswith("MCP tool 't.sleep'")
    assert result.nodes["first"].output["city"] == "Oslo"
    assert result.nodes["independent"].output == 4


@pytest.mark.anyio
async def test_a_call_timeout_and_a_node_timeout_are_node_errors(server: McpServerSpec) -> None:
    timed = server.model_copy(update={"call_timeout": 0.5})
    program = loads(spec_text(timed, """
nodes:
  server_side: {kind: tool, tool: t.sleep, args: {seconds: 30}}
  node_side: {kind: tool, tool: t.sleep, args: {seconds: 30}, timeout: 0.3}
  afterwards: {kind: tool, tool: t.weather, args: {city: Oslo},
               after: [server_side, node_side], on_error: skip}
"""))
    async with runtime() as rt:
        result = await rt.run(program)
    assert result.nodes["server_side"].error == (
        "MCP tool 't.sleep' timed out after 0.5s (the server's call_timeout)"
    )
    assert result.nodes["node_side"].status is NodeStatus.FAILED
    assert "timed out" in (result.nodes["node_side"].error or "")


@pytest.mark.anyio
async def test_one_session_per_server_per_runtime_closed_at_the_end() -> None:
    program = loads(spec_text(stdio_server(), """
nodes:
  who: {kind: tool, tool: t.pid}
outputs:
  pid: "{{ who.result }}"
"""))
    async with runtime() as rt:
        first = await rt.run(program)
        second = await rt.run(program)
        pid = first.outputs["pid"]
        assert second.outputs["pid"] == pid
        assert pid_alive(pid)
    assert not pid_alive(pid)


@pytest.mark.anyio
async def test_arguments_that_break_the_schema_at_run_time_fail_the_node() -> None:
    program = loads(spec_text(stdio_server(), """
inputs:
  days: {type: string, default: three}
nodes:
  w: {kind: tool, tool: t.weather, args: {city: Oslo, days: "{{ inputs.days }}"}}
"""))
    async with runtime() as rt:
        result = await rt.run(program)
    assert result.nodes["w"].error == (
        "tool 't.weather' got invalid arguments: 'days': 'three' is not of type 'integer'"
    )


@pytest.mark.anyio
async def test_a_server_that_died_is_opened_again_by_the_next_run() -> None:
    server = stdio_server()
    crash = loads(spec_text(server, "nodes:\n  boom: {kind: tool, tool: t.crash}\n"))
    who = loads(spec_text(server, """
nodes:
  who: {kind: tool, tool: t.pid}
outputs:
  pid: "{{ who.result }}"
"""))
    async with runtime() as rt:
        before = await rt.run(who)
        crashed = await rt.run(crash)
        after = await rt.run(who)
    assert crashed.nodes["boom"].status is NodeStatus.FAILED
    assert before.status is RunStatus.SUCCEEDED and after.status is RunStatus.SUCCEEDED
    assert after.outputs["pid"] != before.outputs["pid"]
