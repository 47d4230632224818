"""The tracing seam: what a run tells a tracer, and the tracer that does nothing.

The executor opens a run and its nodes, the `tool` kind and the planners' task reporter
open tool calls, and a traced run's LLM calls go through `Tracer.scheduler`. Each call
site tests `tracer.enabled` once and takes its traced branch only then, so a run with
tracing off builds no span, no attribute and no context manager, and imports nothing
from OpenTelemetry (`otel.py` is the implementation; `setup.py` picks one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from taskloom.orchestrator.result import NodeResult, RunResult
    from taskloom.orchestrator.scheduler.base import Scheduler


class RunTrace(Protocol):
    def finished(self, result: RunResult) -> None:
        """The run returned `result`; a run left without it ended by cancellation."""


class TaskTrace(Protocol):
    def finished(self, result: NodeResult) -> None:
        """The plan task ended as `result` says."""


class Tracer(Protocol):
    """Spans for runs, nodes, LLM calls and tool calls; nodes nest in their run, calls
    in the node that made them."""

    @property
    def enabled(self) -> bool: ...

    def run(self, run_id: str, program: str) -> AbstractContextManager[RunTrace]:
        """The run's span, current for the block (its nodes become its children)."""
        ...

    def node(
        self, run_id: str, node_id: str, kind: str, result: Callable[[], NodeResult]
    ) -> AbstractContextManager[None]:
        """A node's span, current for the block; `result()` is read as it closes."""
        ...

    def tool_call(self, tool: str, node_id: str) -> AbstractContextManager[None]:
        """One tool call, made by the node (or map item) `node_id`."""
        ...

    def task(self, task_id: str, tool: str) -> TaskTrace:
        """A plan task's tool call, started now, as a child of the current node."""
        ...

    def scheduler(self, scheduler: Scheduler) -> Scheduler:
        """`scheduler`, with each LLM call it streams recorded as a span."""
        ...

    def close(self) -> None:
        """Send what is still buffered, then stop."""
        ...


class _Ignored:
    def finished(self, result: object) -> None:
        """Nothing to record."""


class NoTracer:
    """Tracing off. Call sites skip it by `enabled`; its methods still work."""

    enabled = False

    @contextmanager
    def run(self, run_id: str, program: str) -> Iterator[RunTrace]:
        yield _Ignored()

    @contextmanager
    def node(
        self, run_id: str, node_id: str, kind: str, result: Callable[[], NodeResult]
    ) -> Iterator[None]:
        yield

    @contextmanager
    def tool_call(self, tool: str, node_id: str) -> Iterator[None]:
        yield

    def task(self, task_id: str, tool: str) -> TaskTrace:
        return _Ignored()

    def scheduler(self, scheduler: Scheduler) -> Scheduler:
        return scheduler

    def close(self) -> None:
        return None


NO_TRACER: Tracer = NoTracer()
