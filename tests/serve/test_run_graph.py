"""A run's DAG rebuilt from its stored spec text: nodes in topological order, their
dependencies, and their definitions as written."""

from __future__ import annotations

import pytest

from taskloom.orchestrator.store import RunRow, StoredStatus
from taskloom.serve.run_graph import NoSpecKept, run_graph
from taskloom.tools.registry import default_registry

SPEC = """\
name: fan
inputs:
  topic: {type: string, default: tides}
nodes:
  summary: {kind: llm, prompt: "Join {{ facts }} and {{ angle }}"}
  facts: {kind: llm, prompt: "Facts about {{ inputs.topic }}"}
  angle: {kind: llm, prompt: "An angle on {{ inputs.topic }}", max_tokens: 16}
  total: {kind: tool, tool: calculator, args: {expression: "1 + 1"}, after: [summary]}
outputs:
  summary: "{{ summary }}"
"""


def _row(spec_text: str | None) -> RunRow:
    return RunRow(run_id="r1", program="fan", status=StoredStatus.RUNNING, spec_text=spec_text,
                  spec_file="fan.yaml")


def test_the_graph_lists_every_node_after_its_dependencies() -> None:
    graph = run_graph(_row(SPEC), default_registry())
    nodes = {node["id"]: node for node in graph["nodes"]}
    order = [node["id"] for node in graph["nodes"]]
    assert set(order) == {"summary", "facts", "angle", "total"}
    assert order.index("summary") > max(order.index("facts"), order.index("angle"))
    assert order.index("total") > order.index("summary")
    assert sorted(nodes["summary"]["depends_on"]) == ["angle", "facts"]
    assert nodes["total"]["depends_on"] == ["summary"]
    assert nodes["angle"]["definition"] == {
        "prompt": "An angle on {{ inputs.topic }}", "max_tokens": 16}
    assert nodes["total"]["kind"] == "tool"
    assert graph["outputs"] == {"summary": "{{ summary }}"}


def test_a_run_without_its_spec_text_has_no_graph() -> None:
    with pytest.raises(NoSpecKept, match="r1"):
        run_graph(_row(None), default_registry())
