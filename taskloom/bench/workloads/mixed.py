"""mixed: chat, tool-use and tree-search programs interleaved in one stream.

A third of the programs comes from each workload (the first ones get the remainder),
and the order is shuffled with the seed, so single-threaded chats, ReAct agents and
hundred-call searches compete for the same engine. With
`WorkloadOptions.mixed_coding_agent`, long coding-agent sessions are a fourth kind and
each kind gets a quarter; without it the programs are exactly those of before.
"""

from __future__ import annotations

import random

from taskloom.bench.workloads.base import BenchProgram, Workload, WorkloadOptions
from taskloom.bench.workloads.chat import chat_programs
from taskloom.bench.workloads.coding_agent import coding_agent_programs
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.bench.workloads.tool_use import tool_use_programs
from taskloom.bench.workloads.tree_search import tree_search_programs

_PARTS = (chat_programs, tool_use_programs, tree_search_programs)
_PARTS_WITH_CODING_AGENT = (*_PARTS, coding_agent_programs)


def build_mixed(count: int, seed: int, options: WorkloadOptions) -> Workload:
    parts = _PARTS_WITH_CODING_AGENT if options.mixed_coding_agent else _PARTS
    programs: list[BenchProgram] = []
    for index, part in enumerate(parts):
        share = count // len(parts) + (1 if index < count % len(parts) else 0)
        programs.extend(part(share, seed, options))
    random.Random(f"mixed/{seed}").shuffle(programs)
    return Workload("mixed", tuple(programs), workload_tools())
