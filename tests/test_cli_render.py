"""The CLI's live view: a plan's tasks appear while it runs, each under its node."""

from __future__ import annotations

from rich.console import Console

from taskloom.cli_render import LiveProgress
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus
from taskloom.program.load import loads

SPEC = """
name: two
nodes:
  solve:
    kind: plan
    question: "What is 2 + 3?"
    tools: [calculator]
  report:
    kind: tool
    tool: calculator
    args: {expression: "1 + 1"}
    after: [solve]
outputs:
  answer: "{{ solve }}"
"""


def _event(node_id: str, status: NodeStatus, parent: str | None = None) -> NodeEvent:
    return NodeEvent(run_id="r", node_id=node_id, status=status, at_s=0.0, parent=parent)


def test_plan_tasks_show_live_under_their_node() -> None:
    progress = LiveProgress(loads(SPEC), Console(), enabled=False)
    assert [name for name, _, _ in progress.rows()] == ["solve", "report"]
    progress.update(_event("solve", NodeStatus.RUNNING))
    progress.update(_event("solve/plan1/1", NodeStatus.PENDING, parent="solve"))
    progress.update(_event("solve/plan1/2", NodeStatus.PENDING, parent="solve"))
    progress.update(_event("solve/plan1/1", NodeStatus.RUNNING, parent="solve"))
    assert progress.rows() == [
        ("solve", NodeStatus.RUNNING, ""),
        ("  solve/plan1/1", NodeStatus.RUNNING, ""),
        ("  solve/plan1/2", NodeStatus.PENDING, ""),
        ("report", NodeStatus.PENDING, ""),
    ]
    progress.update(_event("solve/plan1/1", NodeStatus.SUCCEEDED, parent="solve"))
    assert progress.rows()[1] == ("  solve/plan1/1", NodeStatus.SUCCEEDED, "")
