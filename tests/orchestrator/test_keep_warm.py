"""Keep-warm hints: which LLM calls carry one, and the TTL policy, on virtual time."""

from __future__ import annotations

from typing import Any

import pytest
from trio.testing import MockClock

from taskloom.backends.scripted import ScriptedBackend
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.keep_warm import KeepWarmPolicy, ToolDurations, warm_followers
from taskloom.program.load import loads
from taskloom.runtime import Runtime


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


AGENT = """
name: agent
nodes:
  step_0: {kind: llm, prompt: "start"}
  tool_0:
    kind: tool
    tool: simulated_call
    after: [step_0]
    args: {function: run_tests, latency_s: 4, result_tokens: 3}
  step_1: {kind: llm, prompt: "{{ step_0 }} {{ tool_0 }}"}
  tool_1:
    kind: tool
    tool: simulated_call
    after: [step_1]
    args: {function: read_file, latency_s: 2, result_tokens: 3}
  step_2: {kind: llm, prompt: "{{ step_1 }} {{ tool_1 }}"}
  tool_last:
    kind: tool
    tool: simulated_call
    after: [step_2]
    args: {function: edit_file, latency_s: 1, result_tokens: 1}
outputs:
  result: "{{ tool_last }}"
"""


def test_only_calls_whose_tool_feeds_a_later_llm_call_are_followed() -> None:
    graph = compile_program(loads(AGENT), workload_tools())
    nodes = graph.program.nodes
    followers = warm_followers(nodes, {n: graph.dependents(n) for n in nodes})
    # step_2's tool feeds nothing but the outputs: no later call will reuse its KV.
    assert followers == {"step_0": ("simulated_call",), "step_1": ("simulated_call",)}


def test_ttl_is_the_default_before_a_tool_is_seen_then_margin_times_its_mean_capped() -> None:
    durations = ToolDurations(KeepWarmPolicy(default_s=5.0, margin=2.0, cap_s=20.0))
    assert durations.ttl_s(()) is None
    assert durations.ttl_s(("grep",)) == 5.0
    durations.observe("grep", 1.0)
    durations.observe("grep", 3.0)
    assert durations.ttl_s(("grep",)) == 4.0  # 2 x mean(1, 3)
    durations.observe("pytest", 30.0)
    assert durations.ttl_s(("pytest",)) == 20.0  # capped
    assert durations.ttl_s(("grep", "pytest")) == 20.0  # the longest of parallel tools


@pytest.mark.anyio
async def test_the_runtime_hints_only_with_keep_warm_and_learns_tool_durations() -> None:
    backend = ScriptedBackend(respond=lambda request: "ok")
    durations = ToolDurations()
    warm = Runtime(backend, tools=workload_tools(), keep_warm=durations)
    result = await warm.run(loads(AGENT))
    assert result.status.value == "succeeded"
    # step_0: nothing seen yet (default 5 s); step_1: tool_0 took 4 s, so 2 x 4;
    # step_2: no later call, no hint.
    assert [r.keep_warm_s for r in backend.seen] == [5.0, 8.0, None]
    assert durations.expected_s("simulated_call") == pytest.approx((4 + 2 + 1) / 3)
    second = await warm.run(loads(AGENT))
    assert second.status.value == "succeeded"
    assert backend.seen[3].keep_warm_s == pytest.approx(2 * 7 / 3)

    plain = ScriptedBackend(respond=lambda request: "ok")
    await Runtime(plain, tools=workload_tools()).run(loads(AGENT))
    assert [r.keep_warm_s for r in plain.seen] == [None, None, None]
