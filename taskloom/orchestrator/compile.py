"""Programs to checked task graphs.

Compiling reads every template's references off its Jinja AST, turns them (and
`after`) into edges, and checks everything that can be known before a run: names,
fields declared by output schemas, tools and their arguments, list-ness of `map`
sources, cycles. All problems are collected and raised together as SpecErrors, each
located in the spec file when the program was loaded from one.

The pieces: `graph` (the result), `checks` (the walk), `schema_paths` (what a reference
can reach), and each node kind's own checks (`kinds`).
"""

from __future__ import annotations

from taskloom.errors import SpecError, SpecErrors
from taskloom.orchestrator.checks import ProgramChecker
from taskloom.orchestrator.graph import GraphStats, TaskGraph, describe, graph_stats
from taskloom.orchestrator.kinds.registry import NodeKindRegistry, node_kinds
from taskloom.orchestrator.schema_paths import format_reference
from taskloom.orchestrator.tool_catalog import ToolCatalog, ToolLike
from taskloom.program.models import Program

__all__ = [
    "GraphStats",
    "TaskGraph",
    "ToolCatalog",
    "ToolLike",
    "compile_program",
    "describe",
    "format_reference",
    "graph_stats",
]


def compile_program(
    program: Program, tools: ToolCatalog | None = None, kinds: NodeKindRegistry = node_kinds
) -> TaskGraph:
    """Check `program` and build its task graph; raises SpecErrors listing every problem."""
    checker = ProgramChecker(program, tools, kinds)
    graph = checker.build_graph()
    if checker.errors:
        raise SpecErrors(_in_file_order(checker.errors))
    return TaskGraph(program=program, graph=graph, stats=graph_stats(graph))


def _in_file_order(errors: list[SpecError]) -> list[SpecError]:
    def key(error: SpecError) -> tuple[int, int]:
        where = error.location
        return (where.line, where.column) if where is not None else (0, 0)

    return sorted(errors, key=key)
