"""The SJF oracle: each program's true remaining decode work, known in advance."""

from __future__ import annotations

import re
from collections.abc import Callable

from taskloom.backends.base import GenerateRequest
from taskloom.bench.workloads import Workload
from taskloom.program.models import LLMNode, MapNode, Program


def program_oracle(workload: Workload) -> Callable[[GenerateRequest], float]:
    """Each program's true remaining decode work, in tokens: its total, less the
    `max_tokens` of its calls that arrived before this one (the simulated engine answers
    with exactly `max_tokens`)."""
    totals = {f"p{index:05d}": program_tokens(p.program) for index, p in
              enumerate(workload.programs)}
    spent: dict[str, float] = {}

    def remaining(request: GenerateRequest) -> float:
        before = spent.get(request.program_id, 0.0)
        spent[request.program_id] = before + request.sampling.max_tokens
        return max(totals.get(request.program_id, 0.0) - before, 0.0)

    return remaining


def program_tokens(program: Program) -> float:
    total = 0.0
    for node in program.nodes.values():
        if isinstance(node, LLMNode):
            total += node_tokens(node, program)
        elif isinstance(node, MapNode) and isinstance(node.node, LLMNode):
            total += node_tokens(node.node, program) * _map_width(node, program)
    return total


def node_tokens(node: LLMNode, program: Program) -> float:
    max_tokens = node.max_tokens or program.defaults.max_tokens
    return float(max_tokens * node.n)


def _map_width(node: MapNode, program: Program) -> int:
    # The workloads map over the samples of one LLM node (`{{ expand_3 }}`).
    if isinstance(node.over, list):
        return len(node.over)
    for name in re.findall(r"\{\{\s*([A-Za-z_][\w-]*)", node.over):
        source = program.nodes.get(name)
        if isinstance(source, LLMNode):
            return source.n
    return 1
