"""A traced run, read back from the SDK's in-memory exporter: one span tree of run,
nodes and calls (LLM calls as `chat`, tools as `execute_tool`, map items and plan tasks
included), with the GenAI attributes and taskloom's scheduler attributes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.result import RunResult, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.telemetry import attributes as a
from taskloom.telemetry.otel import OtelTracer
from taskloom.tools.registry import default_registry

SPEC = """
name: traced
defaults: {max_tokens: 16, temperature: 0.5, model: tiny-model}
nodes:
  ask: {kind: llm, prompt: "Say something about tides."}
  sum: {kind: tool, tool: calculator, args: {expression: "2 + 3"}}
  each:
    kind: map
    over: ["1 + 1", "2 * 2", "3 - 1"]
    node: {kind: tool, tool: calculator, args: {expression: "{{ item }}"}}
  answer:
    kind: plan
    question: "What is 6 times 7, plus 1?"
    tools: [calculator]
    max_replans: 0
  broken: {kind: tool, tool: calculator, args: {expression: "1 / 0"}}
outputs:
  said: "{{ ask }}"
"""

PLAN = """1. calculator(expression="6 * 7")
2. calculator(expression="$1 + 1")
3. join()
"""


def _respond(request: GenerateRequest) -> str:
    if "/plan" in request.call_id:
        return PLAN
    if "/join" in request.call_id:
        return "Thought: done\nAction: Finish(43)"
    return "The tide rises twice a day"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    yield InMemorySpanExporter()


async def _traced_run(exporter: InMemorySpanExporter) -> RunResult:
    tracer = OtelTracer.exporting(exporter, batch=False)
    runtime = Runtime(ScriptedBackend(respond=_respond), tools=default_registry(), tracer=tracer)
    try:
        return await runtime.run(loads(SPEC))
    finally:
        tracer.close()


def _attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    assert parent.context is not None
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _node_span(spans: list[ReadableSpan], node_id: str) -> ReadableSpan:
    found = [s for s in spans if s.name == f"node {node_id}"]
    assert len(found) == 1, [s.name for s in spans]
    return found[0]


@pytest.mark.anyio
async def test_a_run_is_one_tree_of_run_nodes_and_calls(exporter: InMemorySpanExporter) -> None:
    result = await _traced_run(exporter)
    assert result.nodes["answer"].output == "43", result.nodes["answer"]
    spans = list(exporter.get_finished_spans())
    roots = [s for s in spans if s.parent is None]
    assert [s.name for s in roots] == ["invoke_workflow traced"]
    run = roots[0]
    assert _attrs(run)[a.OPERATION] == "invoke_workflow"
    assert _attrs(run)[a.RUN_ID] == result.run_id
    assert _attrs(run)[a.RUN_STATUS] == result.status.value == "failed"  # `broken` failed
    assert run.status.status_code is StatusCode.ERROR
    nodes = _children(spans, run)
    assert sorted(s.name for s in nodes) == [
        "node answer", "node ask", "node broken", "node each", "node sum",
    ]
    assert {s.context.trace_id for s in spans if s.context} == {run.context.trace_id}  # type: ignore[union-attr]
    # Every other span is a call inside one node: nothing hangs off the run directly.
    assert len(spans) == 1 + len(nodes) + sum(len(_children(spans, n)) for n in nodes)


@pytest.mark.anyio
async def test_an_llm_call_carries_the_genai_and_scheduler_attributes(
    exporter: InMemorySpanExporter,
) -> None:
    result = await _traced_run(exporter)
    spans = list(exporter.get_finished_spans())
    node = _node_span(spans, "ask")
    [call] = _children(spans, node)
    attrs = _attrs(call)
    assert call.name == "chat tiny-model"
    assert attrs[a.OPERATION] == "chat"
    assert attrs[a.REQUEST_MODEL] == "tiny-model"
    assert attrs[a.MAX_TOKENS] == 16
    assert attrs[a.TEMPERATURE] == 0.5
    ask = result.nodes["ask"]
    assert attrs[a.INPUT_TOKENS] == ask.prompt_tokens > 0
    assert attrs[a.OUTPUT_TOKENS] == ask.generated_tokens == 6
    assert attrs[a.PREFIX_HIT_TOKENS] == ask.cached_prompt_tokens
    assert attrs[a.FINISH_REASONS] == ("stop",)
    assert attrs[a.CALL_OUTCOME] == "finished"
    # From the program-aware scheduler's record of the call.
    assert attrs[a.QUEUE_WAIT_S] >= 0.0
    assert attrs[a.SERVICE_S] >= 0.0
    assert attrs[a.LEVEL] == 0 and attrs[a.PRIORITY] == 0
    assert attrs[a.PREEMPTIONS] == 0
    assert attrs[a.ENGINE] == 0 and attrs[a.ENGINE_NAME] == "scripted"
    node_attrs = _attrs(node)
    assert node_attrs[a.NODE_KIND] == "llm"
    assert node_attrs[a.NODE_STATUS] == "succeeded"
    assert node_attrs[a.NODE_GENERATED_TOKENS] == 6


@pytest.mark.anyio
async def test_tool_nodes_and_map_items_are_execute_tool_spans(
    exporter: InMemorySpanExporter,
) -> None:
    await _traced_run(exporter)
    spans = list(exporter.get_finished_spans())
    [tool] = _children(spans, _node_span(spans, "sum"))
    assert tool.name == "execute_tool calculator"
    assert _attrs(tool)[a.OPERATION] == "execute_tool"
    assert _attrs(tool)[a.TOOL_NAME] == "calculator"
    assert _attrs(tool)[a.TOOL_CALL_ID] == "sum"
    items = _children(spans, _node_span(spans, "each"))
    assert sorted(_attrs(s)[a.TOOL_CALL_ID] for s in items) == ["each[0]", "each[1]", "each[2]"]
    assert {s.name for s in items} == {"execute_tool calculator"}
    broken_node = _node_span(spans, "broken")
    [broken] = _children(spans, broken_node)
    assert broken.status.status_code is StatusCode.ERROR
    assert _attrs(broken)[a.ERROR_TYPE] == "ToolError"
    assert broken_node.status.status_code is StatusCode.ERROR
    assert "division by zero" in _attrs(broken_node)[a.NODE_ERROR]


@pytest.mark.anyio
async def test_a_plan_node_holds_its_planner_calls_and_its_tasks(
    exporter: InMemorySpanExporter,
) -> None:
    result = await _traced_run(exporter)
    spans = list(exporter.get_finished_spans())
    children = _children(spans, _node_span(spans, "answer"))
    calls = [s for s in children if _attrs(s)[a.OPERATION] == "chat"]
    tasks = [s for s in children if _attrs(s)[a.OPERATION] == "execute_tool"]
    assert len(calls) + len(tasks) == len(children)
    assert sorted(_attrs(s)[a.CALL_ID].split("/")[2] for s in calls) == ["join1", "plan1"]
    assert sorted(_attrs(s)[a.TOOL_CALL_ID] for s in tasks) == ["answer/plan1/1", "answer/plan1/2"]
    assert {_attrs(s)[a.NODE_STATUS] for s in tasks} == {"succeeded"}
    assert result.nodes["answer"].llm_calls == len(calls)
    assert sum(_attrs(s)[a.OUTPUT_TOKENS] for s in calls) == result.nodes["answer"].generated_tokens
    # Task 2 read task 1's result: it started after task 1 ended.
    first, second = sorted(tasks, key=lambda s: _attrs(s)[a.TOOL_CALL_ID])
    assert first.end_time is not None and second.start_time is not None
    assert second.start_time >= first.end_time


@pytest.mark.anyio
async def test_tracing_changes_no_result(exporter: InMemorySpanExporter) -> None:
    traced = await _traced_run(exporter)
    runtime = Runtime(ScriptedBackend(respond=_respond), tools=default_registry())
    plain = await runtime.run(loads(SPEC))
    assert traced.status is plain.status is RunStatus.FAILED
    assert traced.outputs == plain.outputs
    assert {n: (r.status, r.output) for n, r in traced.nodes.items()} == {
        n: (r.status, r.output) for n, r in plain.nodes.items()
    }


def test_a_cancelled_run_closes_every_span_and_says_so() -> None:
    exporter = InMemorySpanExporter()

    async def main() -> RunResult:
        tracer = OtelTracer.exporting(exporter, batch=False)
        slow = ScriptedBackend(respond=_respond, delay_s=10.0)
        runtime = Runtime(slow, tools=default_registry(), tracer=tracer)
        try:
            return await runtime.run(loads(SPEC), timeout=1.0)
        finally:
            tracer.close()

    # Virtual time: the timeout passes once the loop has idled 0.2 s of real time. Not at
    # once: the calculator runs in a worker thread, and a clock that jumps while the
    # loop waits on that thread would cancel `sum` too, at random.
    clock = MockClock(autojump_threshold=0.2)
    result = anyio.run(main, backend="trio", backend_options={"clock": clock})
    assert result.status is RunStatus.CANCELLED
    spans = list(exporter.get_finished_spans())
    [run] = [s for s in spans if s.parent is None]
    assert _attrs(run)[a.RUN_STATUS] == "cancelled"
    assert _attrs(_node_span(spans, "ask"))[a.NODE_STATUS] == "cancelled"
    [call] = _children(spans, _node_span(spans, "ask"))
    assert _attrs(call)[a.CALL_OUTCOME] == "cancelled"
    assert a.OUTPUT_TOKENS not in _attrs(call)  # no chunk ever came
    assert _attrs(_node_span(spans, "sum"))[a.NODE_STATUS] == "succeeded"
