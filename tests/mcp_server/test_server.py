"""`taskloom mcp`'s server in process, driven by the SDK's own client: tools, results,
progress, refusals, and calls that run at once through one runtime."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import mcp
import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.mcp_server import ProgramServer, ProgramTool, RuntimeSlot
from taskloom.program.load import load, loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool
from taskloom.tools.sources import SourceConnections

SPECS = Path(__file__).parent.parent.parent / "specs"

MEET = """\
name: meet
description: Waits until two calls are in flight, then answers.
inputs:
  who: {type: string}
nodes:
  met: {kind: tool, tool: rendezvous, args: {who: "{{ inputs.who }}"}}
  greet: {kind: llm, prompt: "greet {{ inputs.who }}"}
outputs:
  met: "{{ met }}"
  greeting: "{{ greet }}"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _rendezvous_tools(parties: int) -> ToolRegistry:
    arrived: list[str] = []
    everyone = anyio.Event()

    @tool
    async def rendezvous(who: str) -> int:
        """Answers once `parties` calls have arrived; returns how many had.

        Args:
            who: the caller.
        """
        arrived.append(who)
        if len(arrived) >= parties:
            everyone.set()
        await everyone.wait()
        return len(arrived)

    registry = default_registry()
    registry.register(rendezvous)
    return registry


@asynccontextmanager
async def serving(
    programs: dict[str, str], runtime: Runtime
) -> AsyncIterator[mcp.Client]:
    slot = RuntimeSlot()
    slot.fill(runtime)
    tools = {name: ProgramTool(name, loads(text, filename=f"{name}.yaml"))
             for name, text in programs.items()}
    async with mcp.Client(ProgramServer(tools, slot).build()) as client:
        yield client


@pytest.mark.anyio
async def test_calls_run_at_once_through_one_runtime_and_scheduler() -> None:
    backend = ScriptedBackend(respond=lambda request: "hello")
    async with SourceConnections.open() as sources:
        runtime = Runtime(backend, tools=_rendezvous_tools(2), sources=sources)
        async with serving({"meet": MEET}, runtime) as client:
            results: dict[str, mcp.types.CallToolResult] = {}

            async def call(who: str) -> None:
                results[who] = await client.call_tool("meet", {"who": who})

            # Each call's tool waits for the other: calls run one at a time would never end.
            with anyio.fail_after(60):
                async with anyio.create_task_group() as group:
                    group.start_soon(call, "ada")
                    group.start_soon(call, "bob")
    assert {who: r.structured_content for who, r in results.items()} == {
        "ada": {"met": 2, "greeting": "hello"},
        "bob": {"met": 2, "greeting": "hello"},
    }
    assert list(runtime.schedulers()) == ["plas"]
    assert len(backend.seen) == 2


@pytest.mark.anyio
async def test_tools_have_the_inputs_as_schema_and_bad_calls_are_errors() -> None:
    async with SourceConnections.open() as sources:
        runtime = Runtime(ScriptedBackend(), sources=sources)
        async with serving({"meet": MEET}, runtime) as client:
            listed = (await client.list_tools()).tools
            unknown = await client.call_tool("mete", {})
            missing = await client.call_tool("meet", {})
    (meet,) = listed
    assert meet.name == "meet" and meet.description.startswith("Waits until two calls")
    assert meet.input_schema == {"type": "object", "properties": {"who": {"type": "string"}},
                                 "required": ["who"]}
    assert unknown.is_error and "did you mean 'meet'" in unknown.content[0].text  # type: ignore[union-attr]
    assert missing.is_error and "missing input 'who'" in missing.content[0].text  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_a_failed_run_is_an_error_result_that_keeps_its_outputs() -> None:
    spec = """\
name: half
nodes:
  good: {kind: tool, tool: calculator, args: {expression: "2 * 21"}}
  bad: {kind: tool, tool: calculator, args: {expression: "1 / 0"}}
outputs:
  good: "{{ good }}"
"""
    async with SourceConnections.open() as sources:
        runtime = Runtime(ScriptedBackend(), sources=sources)
        async with serving({"half": spec}, runtime) as client:
            result = await client.call_tool("half", {})
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert '"good": 42' in text and '"bad":' in text and '"status": "failed"' in text


@pytest.mark.anyio
async def test_quickstart_on_the_embedded_engine_with_progress(engine: VLLMBackend) -> None:
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    program = load(SPECS / "quickstart.yaml")
    slot = RuntimeSlot()
    async with SourceConnections.open() as sources:
        slot.fill(Runtime(engine, sources=sources))
        server = ProgramServer({"quickstart": ProgramTool("quickstart", program)}, slot)
        async with mcp.Client(server.build()) as client:
            (listed,) = (await client.list_tools()).tools
            result = await client.call_tool("quickstart", {"topic": "tidal power"},
                                            progress_callback=on_progress)
    assert listed.name == "quickstart"
    assert not result.is_error, result.content
    assert set(result.structured_content or {}) == set(program.outputs)
    assert [done for done, _, _ in progress] == list(range(1, len(program.nodes) + 1))
    assert {total for _, total, _ in progress} == {len(program.nodes)}
    assert all(message and message.endswith("succeeded") for _, _, message in progress)
