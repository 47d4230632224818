"""Plan tasks as nodes of the run.

Each task of a plan (or each ReAct action) is reported through the node environment as
a `NodeResult` of its own, three times over its life: pending when the planner has
written it, running when its call starts, and succeeded, failed or cancelled when it
ends. The executor keeps the last report in the run result and turns each into a live
event, so a task shows, with its own timing, while the plan is still running.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

from taskloom.orchestrator.kinds.base import NodeEnvironment
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.orchestrator.result import NodeResult, NodeStatus
from taskloom.orchestrator.tool_call import call_tool
from taskloom.planners.base import Observation, Task
from taskloom.planners.fetching import TaskFetchingUnit
from taskloom.telemetry.tracer import TaskTrace
from taskloom.tools.registry import Tool


def subtask_id(node_id: str, label: str, index: int) -> str:
    """`answer/plan1/3`: task 3 of the first plan of node `answer`."""
    return f"{node_id}/{label}/{index}"


def subtask_result(subtask: str, observation: Observation) -> NodeResult:
    """The node `subtask` as its finished task shows it."""
    ran = observation.started_s is not None
    started = observation.started_s if ran else observation.arrived_s
    if observation.cancelled:
        status = NodeStatus.CANCELLED
    else:
        status = NodeStatus.SUCCEEDED if observation.ok else NodeStatus.FAILED
    return NodeResult(
        node_id=subtask,
        kind="tool",
        status=status,
        output=observation.value,
        error=observation.error,
        started_s=started,
        ended_s=observation.ended_s if ran else started,
        attempts=1 if ran else 0,
    )


class SubtaskReporter:
    """Reports the tasks of one plan (labelled `plan1`, `step3`, ...) of the node in `env`."""

    def __init__(self, env: NodeEnvironment, label: str) -> None:
        self.env = env
        self.label = label
        # A plan that numbers two tasks alike must not have the second overwrite the
        # first: the repeat shows as `N#2`. Keyed by the task object, which is unique.
        self._ids: dict[int, str] = {}
        self._uses: dict[int, int] = {}
        self._traces: dict[int, TaskTrace] = {}

    def arrived(self, task: Task, at_s: float) -> None:
        if not task.is_join:  # `join()` ends the plan; it is not a call
            self._report(task, NodeStatus.PENDING, started_s=None, attempts=0)

    def started(self, task: Task, at_s: float) -> None:
        self._report(task, NodeStatus.RUNNING, started_s=at_s, attempts=1)
        if self.env.tracer.enabled:  # in the task's own task, so inside the plan's node
            self._traces[id(task)] = self.env.tracer.task(self._id(task), task.tool)

    def finished(self, observation: Observation) -> None:
        result = subtask_result(self._id(observation.task), observation)
        self.env.report_subtask(result)
        trace = self._traces.pop(id(observation.task), None)
        if trace is not None:
            trace.finished(result)

    def _id(self, task: Task) -> str:
        known = self._ids.get(id(task))
        if known is not None:
            return known
        uses = self._uses[task.index] = self._uses.get(task.index, 0) + 1
        name = subtask_id(self.env.node_id, self.label, task.index)
        self._ids[id(task)] = name = name if uses == 1 else f"{name}#{uses}"
        return name

    def _report(
        self, task: Task, status: NodeStatus, *, started_s: float | None, attempts: int
    ) -> None:
        self.env.report_subtask(
            NodeResult(
                node_id=self._id(task),
                kind="tool",
                status=status,
                started_s=started_s,
                attempts=attempts,
            )
        )


def reporting_unit(
    tools: Sequence[Tool], env: NodeEnvironment, label: str, ledger: CallLedger | None = None
) -> TaskFetchingUnit:
    """A Task Fetching Unit on the run's clock whose tasks show as nodes of the run; with
    `ledger` (the plan node's), every tool call is counted there and in the run's budget."""
    reporter = SubtaskReporter(env, label)
    unit = TaskFetchingUnit(
        tools,
        clock=env.clock,
        on_observation=reporter.finished,
        on_arrival=reporter.arrived,
        on_start=reporter.started,
    )
    if ledger is not None:
        unit.call_tool = functools.partial(call_tool, ledger=ledger)
    return unit
