"""A run's Gantt chart as rows: one per node, each plan task right under its plan node.

Built from the run's JSON (`taskloom run --json`, `taskloom show`, the server's
`GET /v1/runs/{id}`), so a stored run, a finished one and a run still going all draw
the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STATUS_COLOURS = {
    "succeeded": "#2e9e5b",
    "failed": "#d64541",
    "running": "#3b7dd8",
    "pending": "#a7b1bc",
    "skipped": "#d5d9de",
    "cancelled": "#e8952e",
}
"""Fill colour by node status; the same in every picture format."""


@dataclass(frozen=True)
class GanttRow:
    node_id: str
    label: str  # a plan task shows as `plan1/3` under its plan node
    depth: int  # 0: a node of the program; 1: a task of a plan node
    kind: str
    status: str
    start_s: float | None  # None: it never started (skipped, blocked, pending)
    end_s: float | None  # None while it runs: drawn up to the chart's end
    tokens: int
    error: str | None

    @property
    def colour(self) -> str:
        return STATUS_COLOURS.get(self.status, "#7f8c8d")

    def span(self, chart_end_s: float) -> tuple[float, float] | None:
        """Where its bar goes, or None for a node that never started."""
        if self.start_s is None:
            return None
        end = self.end_s if self.end_s is not None else chart_end_s
        return self.start_s, max(end, self.start_s)


@dataclass(frozen=True)
class GanttChart:
    title: str
    rows: tuple[GanttRow, ...]
    end_s: float  # the right edge: the run's wall time, or its last known instant

    def bars(self) -> list[tuple[GanttRow, float, float]]:
        """Each row that has a bar, with where it starts and ends."""
        placed = ((row, row.span(self.end_s)) for row in self.rows)
        return [(row, span[0], span[1]) for row, span in placed if span is not None]


def gantt_chart(run: Mapping[str, Any]) -> GanttChart:
    """The chart of a run, from its JSON object."""
    nodes: Mapping[str, Mapping[str, Any]] = run.get("nodes") or {}
    top = [node_id for node_id in nodes if _parent(node_id, nodes) is None]
    ordered: list[GanttRow] = []
    for node_id in sorted(top, key=lambda n: _start_key(nodes[n])):
        ordered.append(_row(node_id, node_id, 0, nodes[node_id]))
        tasks = [n for n in nodes if _parent(n, nodes) == node_id]
        for task_id in sorted(tasks, key=lambda n: (_start_key(nodes[n]), n)):
            ordered.append(_row(task_id, task_id[len(node_id) + 1:], 1, nodes[task_id]))
    known = [t for row in ordered for t in (row.start_s, row.end_s) if t is not None]
    end = max([float(run.get("wall_s") or 0.0), *known])
    status = run.get("status", "?")
    title = f"{run.get('program', '?')} · run {run.get('run_id', '?')} · {status} · {end:.2f} s"
    return GanttChart(title=title, rows=tuple(ordered), end_s=end)


def _parent(node_id: str, nodes: Mapping[str, Any]) -> str | None:
    """The plan node a task id (`answer/plan1/3`) belongs to; None for a program node."""
    head, slash, _ = node_id.partition("/")
    return head if slash and head in nodes else None


def _start_key(node: Mapping[str, Any]) -> tuple[float, float]:
    start = node.get("start")
    return (0.0, float(start)) if start is not None else (1.0, 0.0)


def _row(node_id: str, label: str, depth: int, node: Mapping[str, Any]) -> GanttRow:
    start, end = node.get("start"), node.get("end")
    return GanttRow(
        node_id=node_id,
        label=label,
        depth=depth,
        kind=str(node.get("kind", "")),
        status=str(node.get("status", "")),
        start_s=None if start is None else float(start),
        end_s=None if end is None else float(end),
        tokens=int(node.get("prompt_tokens") or 0) + int(node.get("generated_tokens") or 0),
        error=node.get("error"),
    )
