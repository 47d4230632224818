"""The Task Fetching Unit: each task starts the moment its inputs exist, independent
tasks overlap, values keep their types, and nothing ever waits for a task that cannot
come."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from taskloom.errors import ToolError
from taskloom.planners.base import Interpolation, Observation, Ref, Task
from taskloom.planners.fetching import TaskFetchingUnit
from taskloom.tools.registry import Tool, tool


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@tool
async def slow(name: str, seconds: float) -> dict[str, Any]:
    """Wait, then answer a record."""
    await anyio.sleep(seconds)
    return {"name": name, "size": len(name), "tags": [name.upper()]}


@tool
async def add(a: float, b: float, seconds: float = 0.0) -> float:
    """Add two numbers."""
    await anyio.sleep(seconds)
    return a + b


@tool
def kind_of(value: Any) -> str:
    """The Python type name of what arrived."""
    return type(value).__name__


@tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(reason)


TOOLS: list[Tool] = [slow, add, kind_of, explode]


async def _stream(tasks: Sequence[Task], gap_s: float = 0.0) -> AsyncIterator[Task]:
    for task in tasks:
        await anyio.sleep(gap_s)
        yield task


def _span(observation: Observation) -> tuple[float, float]:
    assert observation.started_s is not None and observation.ended_s is not None
    return observation.started_s, observation.ended_s


def _by_index(observations: Sequence[Observation]) -> dict[int, Observation]:
    return {o.task.index: o for o in observations}


DIAMOND = [
    Task(1, "slow", {"name": "left", "seconds": 0.3}),
    Task(2, "slow", {"name": "right", "seconds": 0.2}),
    Task(3, "add", {"a": Ref(1, ("size",)), "b": Ref(2, ("size",)), "seconds": 0.05}),
    Task(4, "slow", {"name": "alone", "seconds": 0.1}),
    Task(5, "add", {"a": Ref(3), "b": 1}),
]


@pytest.mark.anyio
async def test_tasks_wait_for_their_inputs_and_independent_ones_overlap() -> None:
    unit = TaskFetchingUnit(TOOLS)
    seen = _by_index(await unit.run(_stream(DIAMOND, gap_s=0.02)))
    assert all(o.ok for o in seen.values()), seen
    assert seen[3].value == 9 and seen[5].value == 10
    (
        (left_start, left_end),
        (right_start, right_end),
        (total_start, total_end),
        (alone_start, alone_end),
        (last_start, _),
    ) = (_span(seen[i]) for i in range(1, 6))
    # A task never starts before its inputs have ended...
    assert total_start >= max(left_end, right_end)
    assert last_start >= total_end
    # ...independent tasks run at the same time...
    assert max(left_start, right_start, alone_start) < min(left_end, right_end, alone_end)
    # ...and the first task was running before a later one had even arrived.
    assert left_end > (seen[4].arrived_s or 0) > left_start


def test_a_dependent_starts_at_the_instant_its_last_input_ends() -> None:
    """On virtual time any polling interval would show as a gap; there is none."""

    async def main() -> dict[int, Observation]:
        return _by_index(await TaskFetchingUnit(TOOLS).run(_stream(DIAMOND)))

    seen = anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )
    assert seen[3].started_s == max(seen[1].ended_s or 0, seen[2].ended_s or 0)
    assert seen[5].started_s == seen[3].ended_s


@pytest.mark.anyio
async def test_values_keep_their_types_and_paths_reach_into_results() -> None:
    tasks = [
        Task(1, "add", {"a": 2, "b": 3}),
        Task(2, "slow", {"name": "abc", "seconds": 0}),
        Task(3, "kind_of", {"value": Ref(1)}),
        Task(4, "kind_of", {"value": Ref(2)}),
        Task(5, "kind_of", {"value": Ref(2, ("tags", 0))}),
        Task(
            6,
            "slow",
            {"name": Interpolation(("n=", Ref(1), " t=", Ref(2, ("tags",)))), "seconds": 0},
        ),
    ]
    seen = _by_index(await TaskFetchingUnit(TOOLS).run(_stream(tasks)))
    assert seen[1].value == 5 and isinstance(seen[1].value, float)
    assert [seen[i].value for i in (3, 4, 5)] == ["float", "dict", "str"]
    assert seen[6].value["name"] == 'n=5.0 t=["ABC"]'


@pytest.mark.anyio
async def test_failures_become_observations_and_spread_to_dependents() -> None:
    tasks = [
        Task(1, "explode", {"reason": "disk on fire"}),
        Task(2, "add", {"a": "not a number", "b": 1}),
        Task(3, "add", {"a": Ref(1), "b": 1}),
        Task(4, "kind_of", {"value": Ref(5)}),  # refers forward: can never be satisfied
        Task(5, "slow", {"name": "fine", "seconds": 0.01}),
        Task(6, "kind_of", {"value": Ref(5, ("missing",))}),
        Task(7, "nope", {}),
        Task(8, "slow", {}, error="cannot parse `8. slow(`"),
        Task(9, "kind_of", {"value": Ref(8)}),
    ]
    with anyio.fail_after(5):  # nothing may hang
        seen = _by_index(await TaskFetchingUnit(TOOLS).run(_stream(tasks)))
    assert "raised ValueError: disk on fire" in (seen[1].error or "")
    assert "invalid arguments" in (seen[2].error or "") and "'a'" in (seen[2].error or "")
    assert (seen[3].error or "").startswith("not run: $1 failed")
    assert "did not come before it" in (seen[4].error or "")
    assert seen[5].ok
    assert "has no field 'missing'" in (seen[6].error or "")
    assert "unknown tool 'nope'" in (seen[7].error or "")
    assert seen[8].error == "cannot parse `8. slow(`" and seen[8].started_s is None
    assert (seen[9].error or "").startswith("not run: $8 failed")


@pytest.mark.anyio
async def test_a_repeated_task_number_does_not_replace_the_first() -> None:
    tasks = [
        Task(1, "add", {"a": 1, "b": 1}),
        Task(1, "add", {"a": 5, "b": 5}),
        Task(2, "add", {"a": Ref(1), "b": 0}),
    ]
    seen = await TaskFetchingUnit(TOOLS).run(_stream(tasks))
    assert [o.error is None for o in seen] == [True, False, True]
    assert seen[2].value == 2


@pytest.mark.anyio
async def test_observations_are_reported_as_they_happen() -> None:
    reported: list[int] = []
    unit = TaskFetchingUnit(TOOLS, on_observation=lambda o: reported.append(o.task.index))
    await unit.run(_stream(DIAMOND))
    assert reported[-1] == 5 and sorted(reported) == [1, 2, 3, 4, 5]
    assert reported.index(4) < reported.index(1)  # the quick task finished first


@pytest.mark.anyio
async def test_a_failing_plan_stream_cancels_the_running_tasks() -> None:
    async def broken() -> AsyncIterator[Task]:
        yield Task(1, "slow", {"name": "long", "seconds": 30})
        await anyio.sleep(0.01)
        raise ToolError("the planner's engine died")

    unit = TaskFetchingUnit(TOOLS)
    with anyio.fail_after(5), pytest.raises(ToolError, match="engine died"):
        await unit.run(broken())


@pytest.mark.anyio
async def test_run_one_runs_a_single_action() -> None:
    observation = await TaskFetchingUnit(TOOLS).run_one(Task(1, "add", {"a": 1, "b": 2}))
    assert observation.value == 3
