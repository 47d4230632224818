"""The Task Fetching Unit: runs a plan's tasks while the plan is still arriving.

Each task gets an `anyio.Event` when it arrives. A task waits on the events of the
tasks it references and starts the moment the last of them is set; nothing polls. A
task's references must name tasks that arrived before it, so every wait ends: a
reference to a task that has not arrived (itself, a later one, a missing number) fails
the task at once instead of waiting for a result that may never come.

Whoever shows progress hears of each task three times: when it arrives, when its call
starts, and when it ends (with its observation; a cancelled task still ends).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Mapping, Sequence
from contextlib import aclosing
from typing import Any

import anyio
from anyio.abc import TaskGroup

from taskloom.planners.base import Observation, Task
from taskloom.planners.values import resolve_args
from taskloom.tools.registry import Tool

ObservationSink = Callable[[Observation], None]
TaskSink = Callable[[Task, float], None]
"""Told of a task and a time: when it arrived, or when its call started."""
Clock = Callable[[], float]
ToolCaller = Callable[[Tool, Mapping[str, Any]], Awaitable[Any]]
"""How a task calls its tool (the run's `call_tool`, which counts it against the budget)."""


async def _call_directly(tool: Tool, args: Mapping[str, Any]) -> Any:
    return await tool.call(args)


def _ignore(observation: Observation) -> None:
    """The default sink."""


def _ignore_task(task: Task, at_s: float) -> None:
    """The default task sink."""


class TaskFetchingUnit:
    """Runs the tasks of one plan. Use one unit per plan; results are not shared across
    plans (a new plan numbers its tasks from 1 again)."""

    def __init__(
        self,
        tools: Sequence[Tool],
        *,
        clock: Clock = anyio.current_time,
        on_observation: ObservationSink = _ignore,
        on_arrival: TaskSink = _ignore_task,
        on_start: TaskSink = _ignore_task,
        call_tool: ToolCaller = _call_directly,
    ) -> None:
        self._tools = {tool.name: tool for tool in tools}
        self.call_tool = call_tool
        self._clock = clock
        self._on_observation = on_observation
        self._on_arrival = on_arrival
        self._on_start = on_start
        self._started: dict[int, float] = {}
        self._finished: dict[int, anyio.Event] = {}
        self._results: dict[int, Observation] = {}
        self.tasks: list[Task] = []
        self._observations: list[Observation] = []

    @property
    def observations(self) -> tuple[Observation, ...]:
        """Every observation so far, in the order the tasks arrived."""
        order = {id(task): position for position, task in enumerate(self.tasks)}
        return tuple(sorted(self._observations, key=lambda o: order.get(id(o.task), 0)))

    async def run(self, tasks: AsyncIterable[Task]) -> tuple[Observation, ...]:
        """Start each task as it arrives; return once the stream has ended and every
        started task has finished. `join` tasks are recorded but not run."""
        try:
            async with anyio.create_task_group() as group, aclosing(_iterate(tasks)) as stream:
                async for task in stream:
                    self.tasks.append(task)
                    if not task.is_join:
                        self._admit(group, task)
        except ExceptionGroup as failure:
            # Tasks never raise (failures become observations), so the one error here is
            # the planner's own, such as its engine failing: raise it as it was.
            if len(failure.exceptions) == 1:
                raise failure.exceptions[0] from None
            raise
        return self.observations

    async def run_one(self, task: Task) -> Observation:
        """Run a single task (a ReAct action) and return what it observed."""
        await self.run(_one(task))
        return self.observations[-1]

    def _admit(self, group: TaskGroup, task: Task) -> None:
        arrived = self._clock()
        self._on_arrival(task, arrived)
        if task.index in self._finished:
            error = f"task number {task.index} is used twice"
            self._record(Observation(task, error=error, arrived_s=arrived))
            return
        # Decided on arrival: a reference to anything not here yet can never be satisfied.
        unknown = [d for d in task.dependencies if d not in self._finished]
        finished = self._finished[task.index] = anyio.Event()
        group.start_soon(self._execute, task, arrived, unknown, finished)

    async def _execute(
        self, task: Task, arrived: float, unknown: list[int], finished: anyio.Event
    ) -> None:
        try:
            observation = await self._observe(task, arrived, unknown)
            self._results[task.index] = observation
            self._record(observation)
        except anyio.get_cancelled_exc_class():
            # Ends the task for whoever shows it, so nothing is left "running" forever.
            self._record(
                Observation(
                    task,
                    error="cancelled",
                    arrived_s=arrived,
                    started_s=self._started.get(task.index),
                    ended_s=self._clock(),
                    cancelled=True,
                )
            )
            raise
        finally:
            finished.set()  # even when cancelled: no dependent may wait forever

    async def _observe(self, task: Task, arrived: float, unknown: list[int]) -> Observation:
        if task.error is not None:
            return Observation(task, error=task.error, arrived_s=arrived)
        if unknown:
            refs = ", ".join(f"${d}" for d in unknown)
            error = f"refers to {refs}, which did not come before it in the plan"
            return Observation(task, error=error, arrived_s=arrived)
        for dependency in task.dependencies:
            await self._finished[dependency].wait()
        failed = [self._results[d] for d in task.dependencies if not self._results[d].ok]
        if failed:
            first = failed[0]
            error = f"not run: ${first.task.index} failed ({first.error})"
            return Observation(task, error=error, arrived_s=arrived)
        return await self._call(task, arrived)

    async def _call(self, task: Task, arrived: float) -> Observation:
        started = self._started[task.index] = self._clock()
        self._on_start(task, started)
        value: Any = None
        error: str | None = None
        try:
            tool = self._tools.get(task.tool)
            if tool is None:
                raise LookupError(f"unknown tool '{task.tool}'")
            inputs = {d: self._results[d].value for d in task.dependencies}
            value = await self.call_tool(tool, resolve_args(task.args, inputs))
        except Exception as exc:  # every failure becomes an observation the joiner sees
            error = str(exc) or type(exc).__name__
        return Observation(task, value, error, arrived, started, self._clock())

    def _record(self, observation: Observation) -> None:
        self._observations.append(observation)
        self._on_observation(observation)


async def _iterate(tasks: AsyncIterable[Task]) -> AsyncGenerator[Task, None]:
    # Leaving early (a failure, a cancel) must close the planner's stream, and with it
    # the LLM call that is still writing the plan.
    iterator = aiter(tasks)
    try:
        async for task in iterator:
            yield task
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


async def _one(task: Task) -> AsyncGenerator[Task, None]:
    yield task
