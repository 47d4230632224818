"""The `map` kind: every item in flight at once (or `max_parallel`), per-item call ids,
a literal list, guards per item, and a clear error for a non-list."""

from __future__ import annotations

import anyio
import pytest

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, tool


def _last(request: GenerateRequest) -> str:
    assert request.messages is not None
    return request.messages[-1].content


@pytest.mark.anyio
async def test_a_literal_list_is_mapped_with_per_item_call_ids() -> None:
    spec = """
name: m
nodes:
  each:
    kind: map
    over: [Oslo, Lima, "{{ inputs.extra }}"]
    node: {kind: llm, prompt: "City {{ item }} #{{ index }}"}
inputs:
  extra: {type: string, default: Pune}
"""
    backend = ScriptedBackend(respond=_last)
    result = await Runtime(backend).run(loads(spec))
    assert result.status is RunStatus.SUCCEEDED
    assert result.nodes["each"].output == ["City Oslo #0", "City Lima #1", "City Pune #2"]
    ids = sorted(r.call_id.split("/", 1)[1] for r in backend.seen)
    assert ids == ["each[0]/a1/s0", "each[1]/a1/s0", "each[2]/a1/s0"]


def test_a_plain_string_is_not_a_list() -> None:
    spec = """
name: m
nodes:
  each: {kind: map, over: "a, b", node: {kind: llm, prompt: "{{ item }}"}}
"""
    with pytest.raises(Exception, match="`over` must be a list, or a template that gives one"):
        compile_program(loads(spec))


@pytest.mark.anyio
async def test_max_parallel_bounds_the_items_in_flight() -> None:
    in_flight = peak = 0

    @tool
    async def hold(x: int) -> int:
        """Hold a slot for a moment.

        Args:
            x: the item.
        """
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        return x * 2

    spec = """
name: m
nodes:
  each:
    kind: map
    over: [1, 2, 3, 4, 5]
    max_parallel: 2
    node: {kind: tool, tool: hold, args: {x: "{{ item }}"}}
"""
    result = await Runtime(ScriptedBackend(), tools=ToolRegistry([hold])).run(loads(spec))
    assert result.nodes["each"].output == [2, 4, 6, 8, 10]
    assert peak == 2


@pytest.mark.anyio
async def test_a_guard_skips_single_items() -> None:
    spec = """
name: m
nodes:
  each: {kind: map, over: [1, 2, 3], node: {kind: llm, when: "item != 2", prompt: "n{{ item }}"}}
"""
    result = await Runtime(ScriptedBackend(respond=_last)).run(loads(spec))
    assert result.nodes["each"].output == ["n1", None, "n3"]


@pytest.mark.anyio
async def test_over_that_renders_to_a_non_list_fails_the_node_with_its_value() -> None:
    spec = """
name: m
nodes:
  things: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  each: {kind: map, over: "{{ things }}", node: {kind: llm, prompt: "{{ item }}"}}
"""
    result = await Runtime(ScriptedBackend()).run(loads(spec))
    node = result.nodes["each"]
    assert node.status is NodeStatus.FAILED
    assert node.error == "map 'over' must give a list, got int: 42"
