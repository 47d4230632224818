"""`GET /v1/runs/{id}/graph`: the DAG a run executes, rebuilt from the spec text the
store keeps with the run. The dashboard needs it because a run's JSON names only the
nodes that have started, and carries no edges and no templates."""

from __future__ import annotations

from typing import Any

from taskloom.orchestrator.compile import ToolCatalog, compile_program
from taskloom.orchestrator.store import RunRow
from taskloom.program.load import loads


class NoSpecKept(ValueError):
    """The run was stored without its spec text (a run made by an older version)."""


def run_graph(row: RunRow, tools: ToolCatalog) -> dict[str, Any]:
    """Every node in topological order with its kind, its dependencies and its
    definition as the spec wrote it (prompts are the templates, not rendered text)."""
    if row.spec_text is None:
        raise NoSpecKept(f"run '{row.run_id}' kept no spec text to draw its graph from")
    graph = compile_program(
        loads(row.spec_text, filename=row.spec_file or f"<run {row.run_id}>"), tools)
    program = graph.program
    return {
        "run_id": row.run_id,
        "program": program.name,
        "nodes": [
            {
                "id": node_id,
                "kind": program.nodes[node_id].kind,
                "depends_on": list(graph.dependencies(node_id)),
                "definition": program.nodes[node_id].model_dump(
                    mode="json", exclude_none=True, exclude_defaults=True, by_alias=True),
            }
            for node_id in graph.topological_order()
        ],
        "outputs": dict(program.outputs),
        "critical_path": list(graph.stats.critical_path),
    }
