"""mixed: the three workloads interleaved, fixed by the seed."""

from __future__ import annotations

from collections import Counter

from taskloom.bench.workloads import build_workload


def test_mixed_holds_a_third_of_each_kind_shuffled() -> None:
    workload = build_workload("mixed", 7, seed=2)
    kinds = [p.kind for p in workload.programs]
    assert Counter(kinds) == {"chat": 3, "tool-use": 2, "tree-search": 2}
    assert kinds != sorted(kinds, key=["chat", "tool-use", "tree-search"].index)


def test_mixed_is_the_same_for_the_same_seed() -> None:
    first = build_workload("mixed", 6, seed=9)
    again = build_workload("mixed", 6, seed=9)
    assert [p.program for p in first.programs] == [p.program for p in again.programs]
