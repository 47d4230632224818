"""mixed: the three workloads interleaved, fixed by the seed; coding-agent behind a flag."""

from __future__ import annotations

import random
from collections import Counter

from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.bench.workloads.chat import chat_programs
from taskloom.bench.workloads.coding_agent import coding_agent_programs
from taskloom.bench.workloads.tool_use import tool_use_programs
from taskloom.bench.workloads.tree_search import tree_search_programs


def test_mixed_holds_a_third_of_each_kind_shuffled() -> None:
    workload = build_workload("mixed", 7, seed=2)
    kinds = [p.kind for p in workload.programs]
    assert Counter(kinds) == {"chat": 3, "tool-use": 2, "tree-search": 2}
    assert kinds != sorted(kinds, key=["chat", "tool-use", "tree-search"].index)


def test_mixed_is_the_same_for_the_same_seed() -> None:
    first = build_workload("mixed", 6, seed=9)
    again = build_workload("mixed", 6, seed=9)
    assert [p.program for p in first.programs] == [p.program for p in again.programs]


def test_without_the_flag_mixed_is_the_three_kinds_as_before() -> None:
    # The construction mixed had before coding-agent existed: a third of each, shuffled.
    options = WorkloadOptions()
    before = [*chat_programs(3, 4, options), *tool_use_programs(3, 4, options),
              *tree_search_programs(2, 4, options)]
    random.Random("mixed/4").shuffle(before)
    for flag_off in (None, WorkloadOptions(mixed_coding_agent=False)):
        workload = build_workload("mixed", 8, seed=4, options=flag_off)
        assert [(p.kind, p.source_id, p.program) for p in workload.programs] == [
            (p.kind, p.source_id, p.program) for p in before]


def test_with_the_flag_coding_agent_sessions_are_a_fourth_kind() -> None:
    options = WorkloadOptions(mixed_coding_agent=True)
    workload = build_workload("mixed", 9, seed=2, options=options)
    kinds = Counter(p.kind for p in workload.programs)
    assert kinds == {"chat": 3, "tool-use": 2, "tree-search": 2, "coding-agent": 2}
    coding = [p for p in workload.programs if p.kind == "coding-agent"]
    assert [p.program for p in coding] == [
        p.program for p in coding_agent_programs(2, 2, options)]
    # The short kinds keep the 8K limit; the sessions use the long one.
    assert max(p.llm_calls for p in coding) >= 10
