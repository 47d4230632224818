"""Plan tasks reported as nodes: one node per task, in the order pending, running, done,
with the fetching unit's own times; a repeated task number gets a node of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import anyio
import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.kinds import NodeEnvironment, node_kinds
from taskloom.orchestrator.result import NodeResult, NodeStatus
from taskloom.orchestrator.scheduler import FifoScheduler
from taskloom.planners.base import Ref, Task
from taskloom.planners.subtasks import reporting_unit
from taskloom.program.models import Defaults
from taskloom.tools.registry import ToolRegistry, tool


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@tool
async def wait(seconds: float) -> float:
    """Sleep, then answer how long."""
    await anyio.sleep(seconds)
    return seconds


def _env(reports: list[NodeResult]) -> NodeEnvironment:
    return NodeEnvironment(
        run_id="r",
        node_id="solve",
        scheduler=FifoScheduler(ScriptedBackend()),
        tools=ToolRegistry([wait]),
        defaults=Defaults(),
        kinds=node_kinds,
        report_subtask=reports.append,
        clock=anyio.current_time,
    )


async def _stream(tasks: Sequence[Task]) -> AsyncIterator[Task]:
    for task in tasks:
        yield task


def _statuses(reports: list[NodeResult], node_id: str) -> list[NodeStatus]:
    return [r.status for r in reports if r.node_id == node_id]


@pytest.mark.anyio
async def test_each_task_is_reported_pending_running_then_done_with_its_times() -> None:
    reports: list[NodeResult] = []
    tasks = [
        Task(1, "wait", {"seconds": 0.05}),
        Task(2, "wait", {"seconds": Ref(1)}),
        Task(3, "join"),
    ]
    unit = reporting_unit([wait], _env(reports), "plan1")
    observations = await unit.run(_stream(tasks))
    assert {r.node_id for r in reports} == {"solve/plan1/1", "solve/plan1/2"}
    for number, observation in enumerate(observations, 1):
        node_id = f"solve/plan1/{number}"
        assert _statuses(reports, node_id) == [
            NodeStatus.PENDING,
            NodeStatus.RUNNING,
            NodeStatus.SUCCEEDED,
        ]
        mine = [r for r in reports if r.node_id == node_id]
        running, done = mine[1], mine[-1]
        assert running.started_s == observation.started_s == done.started_s
        assert done.ended_s == observation.ended_s and done.output == 0.05
    # Task 2 read task 1's result, so it only started once task 1 had ended.
    first, second = observations
    assert second.started_s is not None and first.ended_s is not None
    assert second.started_s >= first.ended_s


@pytest.mark.anyio
async def test_a_repeated_task_number_does_not_overwrite_the_first_task() -> None:
    reports: list[NodeResult] = []
    tasks = [Task(1, "wait", {"seconds": 0.01}), Task(1, "wait", {"seconds": 0.02})]
    await reporting_unit([wait], _env(reports), "plan1").run(_stream(tasks))
    assert _statuses(reports, "solve/plan1/1") == [
        NodeStatus.PENDING,
        NodeStatus.RUNNING,
        NodeStatus.SUCCEEDED,
    ]
    assert _statuses(reports, "solve/plan1/1#2") == [NodeStatus.PENDING, NodeStatus.FAILED]
    repeat = [r for r in reports if r.node_id == "solve/plan1/1#2"][-1]
    assert "used twice" in (repeat.error or "")


@pytest.mark.anyio
async def test_a_cancelled_plan_reports_its_tasks_cancelled_not_running() -> None:
    reports: list[NodeResult] = []
    unit = reporting_unit([wait], _env(reports), "plan1")
    tasks = [Task(1, "wait", {"seconds": 30}), Task(2, "wait", {"seconds": Ref(1)})]
    with anyio.move_on_after(0.1):
        await unit.run(_stream(tasks))
    assert _statuses(reports, "solve/plan1/1") == [
        NodeStatus.PENDING,
        NodeStatus.RUNNING,
        NodeStatus.CANCELLED,
    ]
    # Task 2 waited on task 1 and never started.
    assert _statuses(reports, "solve/plan1/2") == [NodeStatus.PENDING, NodeStatus.CANCELLED]
    cancelled = [o for o in unit.observations if o.cancelled]
    assert {o.task.index for o in cancelled} == {1, 2}
