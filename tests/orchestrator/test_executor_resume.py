"""Checkpoints and resume on the scripted backend: each node is on disk before its
dependents start, and a resumed run does not run a finished node again."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.orchestrator.store import RunStore, StoredStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool

SPEC = """
name: diamond
inputs:
  base: {type: integer, default: 10}
nodes:
  a: {kind: tool, tool: step, args: {name: a, value: "{{ inputs.base }}"}}
  b: {kind: tool, tool: step, args: {name: b, value: "{{ a + 1 }}"}}
  slow: {kind: tool, tool: slow_step, args: {value: "{{ a }}"}}
  c: {kind: tool, tool: step, args: {name: c, value: "{{ b + slow }}"}}
  words: {kind: llm, prompt: "say {{ c }}"}
outputs:
  total: "{{ c }}"
  said: "{{ words }}"
"""


class Tools:
    """Counting tools; `slow_step` waits for `release` while `hang` is set."""

    def __init__(self, store: RunStore | None = None) -> None:
        self.calls: Counter[str] = Counter()
        self.hang = False
        self.seen_on_disk: dict[str, set[str]] = {}
        self.store = store

    def registry(self) -> ToolRegistry:
        tools = default_registry()

        @tool
        def step(name: str, value: int) -> int:
            """Count a call.

            Args:
                name: which node.
                value: the number to pass on.
            """
            self.calls[name] += 1
            if self.store is not None:
                run_ids = self.store.run_ids()
                self.seen_on_disk[name] = set(self.store.nodes(run_ids[-1]))
            return value

        @tool
        async def slow_step(value: int) -> int:
            """Count a call, then wait while hanging.

            Args:
                value: the number to pass on.
            """
            self.calls["slow"] += 1
            if self.hang:
                await anyio.sleep_forever()
            return value * 100

        tools.register(step)
        tools.register(slow_step)
        return tools


def _runtime(tools: Tools, store: RunStore | None) -> Runtime:
    return Runtime(ScriptedBackend(respond=lambda r: "fine"), tools=tools.registry(), store=store)


@pytest.mark.anyio
async def test_each_node_is_on_disk_before_its_dependents_start(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    tools = Tools(store)
    result = await _runtime(tools, store).run(loads(SPEC))
    assert result.status is RunStatus.SUCCEEDED
    assert tools.seen_on_disk["b"] >= {"a"}
    assert tools.seen_on_disk["c"] >= {"a", "b", "slow"}


@pytest.mark.anyio
async def test_a_resumed_run_reruns_only_what_was_in_flight(tmp_path: Path) -> None:
    reference = await _runtime(Tools(), None).run(loads(SPEC), {"base": 5})

    store = RunStore(tmp_path)
    tools = Tools()
    tools.hang = True
    runtime = _runtime(tools, store)
    with anyio.move_on_after(0.5):
        await runtime.run(loads(SPEC), {"base": 5}, run_id="r1")
    store.set_status("r1", StoredStatus.RUNNING)  # as a crash would have left it
    assert tools.calls == Counter(a=1, b=1, slow=1)

    tools.hang = False
    events: list[Any] = []
    resumed = await _runtime(tools, store).resume("r1", on_event=events.append)
    assert resumed.status is RunStatus.SUCCEEDED
    assert resumed.outputs == reference.outputs == {"total": 506, "said": "fine"}
    assert tools.calls == Counter(a=1, b=1, slow=2, c=1)  # only `slow` was in flight
    assert {e.node_id for e in events} == {"slow", "c", "words"}  # restored nodes are quiet
    stored = store.load("r1")
    assert stored.status is RunStatus.SUCCEEDED and list(stored.nodes) == list(reference.nodes)
    assert {n: v.output for n, v in stored.nodes.items()} == {
        n: v.output for n, v in reference.nodes.items()}


FAILING = """
name: failing
nodes:
  bad: {kind: tool, tool: calculator, args: {expression: "1 / 0"}}
  after_bad: {kind: tool, tool: calculator, args: {expression: "{{ bad }} + 1"}}
  later: {kind: tool, tool: calculator, args: {expression: "{{ after_bad }} + 1"}}
  other: {kind: tool, tool: calculator, args: {expression: "2 + 2"}}
outputs:
  other: "{{ other }}"
"""


@pytest.mark.anyio
async def test_a_restored_failure_blocks_its_dependents_again(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    runtime = Runtime(ScriptedBackend(), store=store)
    first = await runtime.run(loads(FAILING), run_id="f")
    assert first.nodes["after_bad"].status is NodeStatus.SKIPPED
    resumed = await runtime.resume("f")
    assert resumed.status is RunStatus.FAILED
    assert resumed.nodes["bad"] == first.nodes["bad"]
    assert resumed.nodes["after_bad"].status is NodeStatus.SKIPPED
    assert "upstream node 'bad' failed" in (resumed.nodes["after_bad"].error or "")
    # A skip restored from a finished run still spreads: `later` is not run on a null.
    assert resumed.nodes["later"].status is NodeStatus.SKIPPED
    assert "upstream node 'after_bad' failed" in (resumed.nodes["later"].error or "")


@pytest.mark.anyio
async def test_resume_needs_a_store_and_a_known_run(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="needs a runtime with a store"):
        await Runtime(ScriptedBackend()).resume("x")
    with pytest.raises(KeyError):
        await Runtime(ScriptedBackend(), store=RunStore(tmp_path)).resume("x")


PLAN_SPEC = """
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


@pytest.mark.anyio
async def test_a_plan_in_flight_restarts_as_a_whole(tmp_path: Path) -> None:
    looked_up: Counter[str] = Counter()
    hang = {"Bergen": True}

    @tool
    async def lookup(name: str) -> dict[str, Any]:
        """Facts about a town.

        Args:
            name: the town.
        """
        looked_up[name] += 1
        if hang.get(name):
            await anyio.sleep_forever()
        return {"name": name, "population": {"Oslo": 709_000, "Bergen": 291_000}[name]}

    def respond(request: Any) -> str:
        return PLAN if "/plan" in request.call_id else "Thought: done\nAction: Finish(1000000)"

    tools = default_registry()
    tools.register(lookup)
    store = RunStore(tmp_path)
    runtime = Runtime(ScriptedBackend(respond=respond), tools=tools, store=store)
    with anyio.move_on_after(1):
        await runtime.run(loads(PLAN_SPEC), run_id="p")
    store.set_status("p", StoredStatus.RUNNING)
    assert looked_up == Counter(Oslo=1, Bergen=1)  # task 1 finished, task 2 hung

    hang["Bergen"] = False
    resumed = await runtime.resume("p")
    assert resumed.status is RunStatus.SUCCEEDED, resumed.error
    assert looked_up == Counter(Oslo=2, Bergen=2)  # the whole plan ran again
    assert set(store.nodes("p")) == {"answer", "answer/plan1/1", "answer/plan1/2",
                                     "answer/plan1/3"}
    assert store.load("p").nodes["answer/plan1/3"].output == 1_000_000
