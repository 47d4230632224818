"""tool-use: BFCL rows as ReAct programs: act, run the calls, act again, answer."""

from __future__ import annotations

import random

from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.bench.workloads.data import bfcl_rows
from taskloom.bench.workloads.tool_use import tool_use_program
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.program.models import LLMNode, ToolNode


def _program(file_name: str, index: int = 0, seed: int = 0):  # type: ignore[no-untyped-def]
    row = bfcl_rows(file_name)[index]
    built = tool_use_program(file_name, row, WorkloadOptions(), random.Random(seed))
    assert built is not None
    return built


def test_tool_use_programs_compile_against_the_workload_tools() -> None:
    workload = build_workload("tool-use", 12, seed=3)
    for bench_program in workload.programs:
        compile_program(bench_program.program, workload.tools)
        resolve_inputs(bench_program.program, bench_program.inputs)
        llm_nodes = [n for n in bench_program.program.nodes.values() if isinstance(n, LLMNode)]
        assert len(llm_nodes) == bench_program.llm_calls >= 1


def test_a_parallel_row_runs_its_calls_side_by_side_then_answers() -> None:
    built = _program("BFCL_v4_parallel.json")  # two spotify.play calls
    nodes = built.program.nodes
    assert sorted(nodes) == ["act_0", "act_0_call_0", "act_0_call_1", "answer_0"]
    graph = compile_program(built.program)
    assert graph.dependencies("act_0_call_0") == ("act_0",)
    assert graph.dependencies("act_0_call_1") == ("act_0",)
    assert set(graph.dependencies("answer_0")) == {"act_0", "act_0_call_0", "act_0_call_1"}
    call = nodes["act_0_call_0"]
    assert isinstance(call, ToolNode) and call.tool == "simulated_call"
    assert call.args["function"] == "spotify.play"
    assert call.args["latency_s"] > 0 and call.args["result_tokens"] >= 4


def test_the_system_prompt_holds_the_real_function_docs() -> None:
    built = _program("BFCL_v4_parallel.json")
    assert "spotify.play" in built.inputs["functions"]
    assert "Play songs from the artists Taylor Swift" in built.inputs["question_0"]


def test_a_multi_turn_row_acts_one_call_at_a_time_per_turn() -> None:
    built = _program("BFCL_v4_multi_turn_base.json")  # 4 turns, 3+2+1+4 expected calls
    graph = compile_program(built.program)
    assert built.llm_calls == (3 + 1) + (2 + 1) + (1 + 1) + (4 + 1)
    # Each step waits for the result of the one before it.
    assert "act_0_call_0" in graph.dependencies("act_1")
    assert "answer_0" in graph.dependencies("act_3")
    assert "mkdir" in built.inputs["functions"]


def test_latencies_are_drawn_from_the_seed() -> None:
    def latencies(seed: int) -> list[float]:
        nodes = _program("BFCL_v4_parallel_multiple.json", seed=seed).program.nodes.values()
        return [n.args["latency_s"] for n in nodes if isinstance(n, ToolNode)]

    assert latencies(1) == latencies(1)
    assert latencies(1) != latencies(2)


def test_the_context_limit_cuts_multi_turn_programs_short() -> None:
    row = bfcl_rows("BFCL_v4_multi_turn_base.json")[0]
    full = tool_use_program("BFCL_v4_multi_turn_base.json", row, WorkloadOptions(),
                            random.Random(0))
    short = tool_use_program("BFCL_v4_multi_turn_base.json", row,
                             WorkloadOptions(max_context_tokens=7000), random.Random(0))
    assert full is not None and short is not None
    assert short.llm_calls < full.llm_calls
