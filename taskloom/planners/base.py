"""The planner seam: tasks a planner writes, what running them observed, and the history
a planner sees when it plans again.

A `Planner` turns a question into tool calls. It yields each `Task` the moment it has
parsed it, so the caller can start running it while the rest of the plan is still being
generated. Values flow between tasks through `Ref`s (`$2`, `$2.population`), which are
resolved to the upstream task's own typed result, never to its text.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from taskloom.errors import TaskloomError
from taskloom.tools.registry import Tool

JOIN_TOOL = "join"
"""The pseudo-tool that ends an LLMCompiler plan: `N. join()`."""

FINISH_TOOL = "finish"
"""The pseudo-tool of a ReAct step that gives the final answer instead of acting."""

PathStep = str | int


class PlanError(TaskloomError):
    """A planner could not reach an answer: replans or steps ran out, or its replies
    could not be understood. `history` holds what was planned and observed until then."""

    history: History | None = None


@dataclass(frozen=True)
class Ref:
    """`$N`, optionally followed by a path into N's result: `$2.city`, `$2["k"][0]`."""

    task: int
    path: tuple[PathStep, ...] = ()

    def __str__(self) -> str:
        text = f"${self.task}"
        for step in self.path:
            text += f"[{step}]" if isinstance(step, int) else f".{step}"
        return text


@dataclass(frozen=True)
class Interpolation:
    """A string with references inside it, such as "population of $1": the references
    are rendered as text into it. A string that is one reference and nothing else is a
    `Ref`, so its value keeps its type."""

    parts: tuple[str | Ref, ...]

    def __str__(self) -> str:
        return "".join(str(part) for part in self.parts)


def iter_refs(value: Any) -> Iterator[Ref]:
    """Every `Ref` inside an argument value, in order."""
    if isinstance(value, Ref):
        yield value
    elif isinstance(value, Interpolation):
        yield from (part for part in value.parts if isinstance(part, Ref))
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from iter_refs(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from iter_refs(item)


@dataclass(frozen=True)
class Task:
    """One tool call of a plan (or one ReAct action).

    `args` holds JSON values, `Ref`s and `Interpolation`s. `error` is set when the planner
    wrote something that cannot run (an unknown tool, a reference to itself or to a later
    task, a line that does not parse); such a task is reported as a failed observation
    instead of being run, so the joiner can act on it.
    """

    index: int
    tool: str
    args: Mapping[str, Any] = field(default_factory=dict)
    thought: str = ""
    source: str = ""
    error: str | None = None

    @property
    def dependencies(self) -> tuple[int, ...]:
        """The task numbers this task reads, each once, in order of first use."""
        return tuple(dict.fromkeys(ref.task for ref in iter_refs(self.args)))

    @property
    def is_join(self) -> bool:
        return self.tool == JOIN_TOOL

    @property
    def is_finish(self) -> bool:
        return self.tool == FINISH_TOOL


@dataclass(frozen=True)
class Observation:
    """What running one task gave: its typed result, or why it failed or did not run.

    Times are seconds since the run started; `started_s` is when every input existed and
    the call began, `ended_s` when it returned. `cancelled` marks a task stopped from
    outside (its run or its plan was cancelled) rather than one that failed.
    """

    task: Task
    value: Any = None
    error: str | None = None
    arrived_s: float | None = None
    started_s: float | None = None
    ended_s: float | None = None
    cancelled: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Round:
    """One plan (or one ReAct step), what it observed, and why it was not the end."""

    tasks: tuple[Task, ...]
    observations: tuple[Observation, ...]
    replan_reason: str | None = None

    def observation(self, index: int) -> Observation | None:
        return next((o for o in self.observations if o.task.index == index), None)


@dataclass(frozen=True)
class History:
    """Everything planned and observed so far, oldest round first."""

    rounds: tuple[Round, ...] = ()

    def with_round(self, round_: Round) -> History:
        return History((*self.rounds, round_))

    @property
    def observations(self) -> tuple[Observation, ...]:
        return tuple(o for r in self.rounds for o in r.observations)


@runtime_checkable
class Planner(Protocol):
    """Writes tool calls for a question, yielding each task as soon as it is parsed."""

    def plan(
        self, question: str, tools: Sequence[Tool], history: History
    ) -> AsyncIterator[Task]: ...


@dataclass(frozen=True)
class PlanOutcome:
    """A planner's answer and everything it planned and observed on the way."""

    answer: Any
    history: History

    @property
    def tasks(self) -> tuple[Task, ...]:
        return tuple(task for r in self.history.rounds for task in r.tasks)
