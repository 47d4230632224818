"""Plan tasks as nodes of the run: each observation becomes a `NodeResult` with its own
timing, reported through the node environment so it shows in the run result."""

from __future__ import annotations

from taskloom.orchestrator.node_runners import NodeEnvironment
from taskloom.orchestrator.result import NodeResult, NodeStatus
from taskloom.planners.base import Observation
from taskloom.planners.fetching import ObservationSink


def subtask_id(node_id: str, label: str, index: int) -> str:
    """`answer/plan1/3`: task 3 of the first plan of node `answer`."""
    return f"{node_id}/{label}/{index}"


def subtask_result(node_id: str, label: str, observation: Observation) -> NodeResult:
    ran = observation.started_s is not None
    started = observation.started_s if ran else observation.arrived_s
    return NodeResult(
        node_id=subtask_id(node_id, label, observation.task.index),
        kind="tool",
        status=NodeStatus.SUCCEEDED if observation.ok else NodeStatus.FAILED,
        output=observation.value,
        error=observation.error,
        started_s=started,
        ended_s=observation.ended_s if ran else started,
        attempts=1 if ran else 0,
    )


def subtask_reporter(env: NodeEnvironment, label: str) -> ObservationSink:
    def report(observation: Observation) -> None:
        env.report_subtask(subtask_result(env.node_id, label, observation))

    return report
