"""coding-agent: long sessions whose every call re-sends the whole session so far."""

from __future__ import annotations

import random
from typing import Any

import pytest

from taskloom.backends.sim import FILLER_TEXT
from taskloom.bench.workloads import WorkloadError, WorkloadOptions, build_workload
from taskloom.bench.workloads.coding_agent import (
    MAX_TURNS,
    MIN_TURNS,
    TOOL_KINDS,
    coding_agent_program,
)
from taskloom.bench.workloads.sim_tools import RESULT_WORD
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.program.models import LLMNode, ToolNode

_KINDS = {kind.name: kind for kind in TOOL_KINDS}


def _simulated_outputs(program_nodes: dict[str, LLMNode | ToolNode]) -> dict[str, str]:
    """What the simulator and the simulated tools answer each node with."""
    outputs: dict[str, str] = {}
    for node_id, node in program_nodes.items():
        if isinstance(node, LLMNode):
            outputs[node_id] = FILLER_TEXT * (node.max_tokens or 0)
        else:
            function, tokens = node.args["function"], node.args["result_tokens"]
            outputs[node_id] = f"{function} returned: " + " ".join([RESULT_WORD] * tokens)
    return outputs


def test_sessions_compile_against_the_workload_tools_and_alternate_call_and_tool() -> None:
    workload = build_workload("coding-agent", 6, seed=1)
    assert workload.name == "coding-agent"
    for bench_program in workload.programs:
        graph = compile_program(bench_program.program, workload.tools)
        resolve_inputs(bench_program.program, bench_program.inputs)
        turns = bench_program.llm_calls
        assert sorted(bench_program.program.nodes) == sorted(
            [f"step_{i}" for i in range(turns)] + [f"tool_{i}" for i in range(turns)]
        )
        for i in range(1, turns):
            assert f"tool_{i - 1}" in graph.dependencies(f"step_{i}")
        assert graph.dependencies(f"tool_{turns - 1}") == (f"step_{turns - 1}",)


def test_turn_counts_stay_in_range_and_centre_near_the_published_median() -> None:
    workload = build_workload("coding-agent", 200, seed=0)
    turns = sorted(p.llm_calls for p in workload.programs)
    assert turns[0] >= MIN_TURNS and turns[-1] <= MAX_TURNS
    # Median 43 turns (AgentX), less the sessions cut by the context limit.
    assert 30 <= turns[len(turns) // 2] <= 50


def test_a_short_context_cuts_sessions_before_their_drawn_turns() -> None:
    # ~1,150 tokens of growth per turn: 8K holds a few turns, fewer than the 10 drawn.
    short = WorkloadOptions(agent_context_tokens=8_000)
    cut = build_workload("coding-agent", 20, seed=0, options=short)
    full = build_workload("coding-agent", 20, seed=0)
    for short_session, full_session in zip(cut.programs, full.programs, strict=True):
        assert 1 <= short_session.llm_calls < MIN_TURNS <= full_session.llm_calls


def test_context_grows_every_turn_and_stays_under_the_limit(
    count_prompt_tokens: Any,
) -> None:
    limit = 40_000
    options = WorkloadOptions(agent_context_tokens=limit)
    workload = build_workload("coding-agent", 5, seed=4, options=options)
    cut = 0
    for bench_program in workload.programs:
        program, inputs = bench_program.program, bench_program.inputs
        outputs = _simulated_outputs(program.nodes)
        previous = 0
        for i in range(bench_program.llm_calls):
            node = program.nodes[f"step_{i}"]
            assert isinstance(node, LLMNode) and node.max_tokens is not None
            prompt = count_prompt_tokens(program, inputs, f"step_{i}", outputs)
            assert prompt > previous
            assert prompt + node.max_tokens <= limit
            previous = prompt + node.max_tokens
        cut += bench_program.llm_calls < MIN_TURNS or previous > limit - 10_000
    assert cut >= 1  # 40K is tight enough that some session reaches the limit


def test_each_prompt_extends_the_one_before_it() -> None:
    workload = build_workload("coding-agent", 1, seed=2)
    nodes = workload.programs[0].program.nodes
    first, second = nodes["step_0"], nodes["step_1"]
    assert isinstance(first, LLMNode) and isinstance(second, LLMNode)
    assert first.messages is not None and second.messages is not None
    assert second.messages[: len(first.messages)] == first.messages
    assert [m.content for m in second.messages[len(first.messages):]] == [
        "{{ step_0 }}", "{{ tool_0 }}"]
    assert first.system == second.system == "{{ inputs.system }}"


def test_sessions_share_the_system_prompt_but_not_the_issue() -> None:
    workload = build_workload("coding-agent", 3, seed=0)
    systems = {p.inputs["system"] for p in workload.programs}
    issues = {p.inputs["issue"] for p in workload.programs}
    assert len(systems) == 1 and len(issues) == 3


def test_tool_latencies_and_outputs_stay_within_each_kinds_bounds() -> None:
    workload = build_workload("coding-agent", 40, seed=7)
    seen: dict[str, int] = {}
    for bench_program in workload.programs:
        for node in bench_program.program.nodes.values():
            if not isinstance(node, ToolNode):
                continue
            kind = _KINDS[node.args["function"]]
            seen[kind.name] = seen.get(kind.name, 0) + 1
            assert kind.latency_s.low <= node.args["latency_s"] <= kind.latency_s.high
            tokens = node.args["result_tokens"]
            assert kind.output_tokens.low <= tokens <= kind.output_tokens.high
    assert set(seen) == set(_KINDS)
    total = sum(seen.values())
    for name, count in seen.items():
        assert abs(count / total - _KINDS[name].share) < 0.05


def test_the_same_count_and_seed_give_the_same_sessions() -> None:
    first = build_workload("coding-agent", 4, seed=5)
    again = build_workload("coding-agent", 4, seed=5)
    other = build_workload("coding-agent", 4, seed=6)
    assert [p.program for p in first.programs] == [p.program for p in again.programs]
    assert [p.inputs for p in first.programs] == [p.inputs for p in again.programs]
    assert [p.program for p in first.programs] != [p.program for p in other.programs]
    # Session i depends on (seed, i) only: more sessions extend the list.
    more = build_workload("coding-agent", 6, seed=5)
    assert [p.program for p in more.programs[:4]] == [p.program for p in first.programs]


def test_a_context_too_small_for_the_first_turn_is_an_error() -> None:
    assert coding_agent_program(
        "x", WorkloadOptions(agent_context_tokens=1000), random.Random(0)) is None
    with pytest.raises(WorkloadError, match="agent_context_tokens"):
        build_workload("coding-agent", 2, seed=0,
                       options=WorkloadOptions(agent_context_tokens=1000))


def test_the_output_cap_caps_every_reply() -> None:
    capped = WorkloadOptions(max_output_tokens=8)
    workload = build_workload("coding-agent", 2, seed=0, options=capped)
    for bench_program in workload.programs:
        for node in bench_program.program.nodes.values():
            if isinstance(node, LLMNode):
                assert node.max_tokens is not None and node.max_tokens <= 8
