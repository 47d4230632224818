"""The tasks of a plan are nodes of the run: each one is announced live (pending when the
planner writes it, running when its call starts, then how it ended), and shows in the run
result, the stored run and the CLI's --json with the timing the events reported."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio
import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.cli_render import run_result_json
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.store import RunStore
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


SPEC = """
name: towns
nodes:
  answer:
    kind: plan
    question: "How many people live in Oslo and Bergen?"
    tools: [lookup, calculator]
    max_replans: 0
outputs:
  answer: "{{ answer }}"
"""

PLAN = """1. lookup(name="Oslo")
2. lookup(name="Bergen")
3. calculator(expression="$1.population + $2.population")
4. join()
"""

POPULATION = {"Oslo": 709_000, "Bergen": 291_000}


def _tools(seconds: float = 0.05) -> ToolRegistry:
    @tool
    async def lookup(name: str) -> dict[str, Any]:
        """Facts about a town.

        Args:
            name: the town.
        """
        await anyio.sleep(seconds)
        if name not in POPULATION:
            raise KeyError(f"no town {name!r}")
        return {"name": name, "population": POPULATION[name]}

    registry = default_registry()
    registry.register(lookup)
    return registry


def _backend(plan: str) -> ScriptedBackend:
    def respond(request: GenerateRequest) -> str:
        if "/plan" in request.call_id:
            return plan
        return "Thought: done\nAction: Finish(1000000)"

    return ScriptedBackend(respond=respond, per_chunk_s=0.01)


async def _run(
    plan: str, *, seconds: float = 0.05, timeout: float | None = None, store: RunStore | None = None
) -> tuple[RunResult, list[NodeEvent]]:
    events: list[NodeEvent] = []
    runtime = Runtime(_backend(plan), tools=_tools(seconds), store=store)
    result = await runtime.run(loads(SPEC), timeout=timeout, on_event=events.append)
    return result, events


def _by_node(events: list[NodeEvent]) -> dict[str, list[NodeEvent]]:
    grouped: dict[str, list[NodeEvent]] = defaultdict(list)
    for event in events:
        grouped[event.node_id].append(event)
    return grouped


def _at(events: list[NodeEvent], status: NodeStatus) -> float:
    return next(e.at_s for e in events if e.status is status)


@pytest.mark.anyio
async def test_each_plan_task_is_announced_pending_running_then_done() -> None:
    result, events = await _run(PLAN)
    assert result.status is RunStatus.SUCCEEDED, result.error
    grouped = _by_node(events)
    tasks = [f"answer/plan1/{n}" for n in (1, 2, 3)]
    assert sorted(k for k in grouped if k.startswith("answer/")) == tasks  # join() is no node
    for task in tasks:
        assert [e.status for e in grouped[task]] == [
            NodeStatus.PENDING,
            NodeStatus.RUNNING,
            NodeStatus.SUCCEEDED,
        ]
        assert {e.parent for e in grouped[task]} == {"answer"}
    assert {e.parent for e in grouped["answer"]} == {None}
    order = [(e.node_id, e.status) for e in events]
    # Streaming: the first lookup was running before the planner had written task 3.
    assert order.index(("answer/plan1/1", NodeStatus.RUNNING)) < order.index(
        ("answer/plan1/3", NodeStatus.PENDING)
    )
    # The plan node runs around its tasks.
    assert order.index(("answer", NodeStatus.RUNNING)) < order.index(
        ("answer/plan1/1", NodeStatus.PENDING)
    )
    assert order[-1] == ("answer", NodeStatus.SUCCEEDED)


@pytest.mark.anyio
async def test_task_events_carry_the_timing_the_result_keeps(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    result, events = await _run(PLAN, store=store)
    grouped = _by_node(events)
    spans = {}
    for number in (1, 2, 3):
        task = f"answer/plan1/{number}"
        node = result.nodes[task]
        assert node.kind == "tool" and node.status is NodeStatus.SUCCEEDED
        assert node.started_s is not None and node.ended_s is not None
        start = _at(grouped[task], NodeStatus.RUNNING)
        end = _at(grouped[task], NodeStatus.SUCCEEDED)
        assert start == pytest.approx(node.started_s, abs=0.01)
        assert end == pytest.approx(node.ended_s, abs=0.01)
        assert node.duration_s is not None and node.duration_s >= 0.0
        spans[number] = (start, end)
    assert spans[1][1] - spans[1][0] >= 0.04  # each lookup sleeps 0.05 s
    # The two lookups overlap; the sum starts once both have ended.
    assert spans[1][0] < spans[2][1] and spans[2][0] < spans[1][1]
    assert spans[3][0] >= max(spans[1][1], spans[2][1])
    # What the CLI's --json prints holds the tasks too, with their times.
    printed = run_result_json(result)["nodes"]
    assert printed["answer/plan1/3"]["output"] == 1_000_000
    assert printed["answer/plan1/1"]["start"] == result.nodes["answer/plan1/1"].started_s
    # And so does the run kept on disk.
    stored = store.load(result.run_id).nodes
    assert {k: v for k, v in stored.items() if k.startswith("answer/")} == {
        k: v for k, v in result.nodes.items() if k.startswith("answer/")
    }


@pytest.mark.anyio
async def test_a_task_that_cannot_run_goes_from_pending_to_failed() -> None:
    plan = '1. lookup(name="Oslo")\n2. teleport(to="Bergen")\n3. join()\n'
    result, events = await _run(plan)
    grouped = _by_node(events)
    assert [e.status for e in grouped["answer/plan1/2"]] == [
        NodeStatus.PENDING,
        NodeStatus.FAILED,
    ]
    assert "unknown tool 'teleport'" in (grouped["answer/plan1/2"][-1].error or "")
    assert result.nodes["answer/plan1/2"].attempts == 0  # never called
    assert result.nodes["answer/plan1/1"].status is NodeStatus.SUCCEEDED


@pytest.mark.anyio
async def test_a_run_that_times_out_ends_its_running_tasks_as_cancelled() -> None:
    result, events = await _run(PLAN, seconds=30, timeout=0.5)
    assert result.status is RunStatus.CANCELLED
    grouped = _by_node(events)
    for task in ("answer/plan1/1", "answer/plan1/2"):
        assert [e.status for e in grouped[task]] == [
            NodeStatus.PENDING,
            NodeStatus.RUNNING,
            NodeStatus.CANCELLED,
        ]
        assert result.nodes[task].status is NodeStatus.CANCELLED
    # The sum was waiting for its inputs: it never ran, and nothing is left running.
    assert grouped["answer/plan1/3"][-1].status is NodeStatus.CANCELLED
    assert all(n.status is not NodeStatus.RUNNING for n in result.nodes.values())


@pytest.mark.anyio
async def test_react_actions_are_nodes_with_events_too() -> None:
    replies = iter(
        [
            'Thought: Oslo first\nAction: lookup(name="Oslo")',
            'Thought: then Bergen\nAction: lookup(name="Bergen")',
            "Thought: done\nFinal Answer: 1000000",
        ]
    )
    backend = ScriptedBackend(respond=lambda request: next(replies))
    events: list[NodeEvent] = []
    spec = SPEC.replace("    max_replans: 0", "    planner: react\n    max_steps: 4")
    result = await Runtime(backend, tools=_tools()).run(loads(spec), on_event=events.append)
    assert result.status is RunStatus.SUCCEEDED, result.error
    grouped = _by_node(events)
    assert sorted(k for k in grouped if k.startswith("answer/")) == [
        "answer/step1/1",
        "answer/step2/2",  # a ReAct action is numbered by its step
    ]
    for task in ("answer/step1/1", "answer/step2/2"):
        assert [e.status for e in grouped[task]] == [
            NodeStatus.PENDING,
            NodeStatus.RUNNING,
            NodeStatus.SUCCEEDED,
        ]
    # One call at a time: the second action starts after the first has ended.
    assert _at(grouped["answer/step2/2"], NodeStatus.RUNNING) >= _at(
        grouped["answer/step1/1"], NodeStatus.SUCCEEDED
    )
