"""tree-search: LATS-style searches of over a hundred calls, k children per step."""

from __future__ import annotations

import random

from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.bench.workloads.tree_search import tree_search_program
from taskloom.orchestrator.compile import compile_program
from taskloom.program.models import LLMNode, MapNode, ToolNode


def test_tree_search_programs_make_over_a_hundred_calls() -> None:
    workload = build_workload("tree-search", 4, seed=0)
    for bench_program in workload.programs:
        compile_program(bench_program.program, workload.tools)
        nodes = bench_program.program.nodes
        expansions = [n for n in nodes.values() if isinstance(n, LLMNode) and n.n > 1]
        scores = [n for n in nodes.values() if isinstance(n, MapNode)]
        assert 10 <= len(expansions) == len(scores) <= 14
        calls = sum(n.n for n in expansions) * 2 + 1
        assert calls == bench_program.llm_calls > 100


def test_a_step_expands_then_scores_every_child_then_selects() -> None:
    built = tree_search_program("Plan a trip to Oslo.", "t", WorkloadOptions(), random.Random(1))
    assert built is not None
    graph = compile_program(built.program)
    expand = built.program.nodes["expand_0"]
    assert isinstance(expand, LLMNode) and expand.n == 5 and expand.temperature == 1.0
    score = built.program.nodes["score_0"]
    assert isinstance(score, MapNode) and score.over == "{{ expand_0 }}"
    select = built.program.nodes["select_0"]
    assert isinstance(select, ToolNode) and select.tool == "lats_select"
    assert set(graph.dependencies("select_0")) == {"expand_0", "score_0"}
    assert "select_0" in graph.dependencies("expand_1")


def test_a_small_context_makes_a_shallower_search() -> None:
    built = tree_search_program("Plan a trip.", "t", WorkloadOptions(max_context_tokens=600),
                                random.Random(1))
    assert built is not None
    depth = sum(1 for node_id in built.program.nodes if node_id.startswith("expand_"))
    assert 1 <= depth < 10
    compile_program(built.program)
