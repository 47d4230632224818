"""Progress events the executor emits while a run goes on (for live displays and traces)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from taskloom.orchestrator.result import NodeStatus


@dataclass(frozen=True)
class NodeEvent:
    """A node changed state. The tasks a `plan` node runs are nodes too (`solve/plan1/2`):
    their events name that node as `parent`, and go pending, running, then finished."""

    run_id: str
    node_id: str
    status: NodeStatus
    at_s: float
    attempt: int = 1
    generated_tokens: int = 0
    error: str | None = None
    parent: str | None = None


EventSink = Callable[[NodeEvent], None]


def ignore_events(event: NodeEvent) -> None:
    """The default sink."""
