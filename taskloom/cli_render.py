"""How the CLI shows a run to a person (rich) and to a program (JSON)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from types import TracebackType
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunResult
from taskloom.program.models import Program

_STYLE = {
    NodeStatus.PENDING: "dim",
    NodeStatus.RUNNING: "yellow",
    NodeStatus.SUCCEEDED: "green",
    NodeStatus.FAILED: "bold red",
    NodeStatus.SKIPPED: "cyan",
    NodeStatus.CANCELLED: "magenta",
}


class LiveProgress:
    """A live table of node states, updated from executor events."""

    def __init__(self, program: Program, console: Console, *, enabled: bool = True) -> None:
        self._states: dict[str, NodeEvent | None] = dict.fromkeys(program.nodes)
        # The tasks a `plan` node runs appear while it runs; each shows under its node.
        self._tasks_of: dict[str, list[str]] = {}
        self._console = console
        self._enabled = enabled
        self._message = ""
        self._since = time.monotonic()
        self._live = Live(console=console, refresh_per_second=8, transient=True,
                          get_renderable=self._render)

    def __enter__(self) -> LiveProgress:
        if self._enabled:
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._enabled:
            self._live.__exit__(kind, exc, tb)

    def note(self, message: str) -> None:
        self._message = message
        self._since = time.monotonic()

    def update(self, event: NodeEvent) -> None:
        if event.node_id not in self._states and event.parent is not None:
            self._tasks_of.setdefault(event.parent, []).append(event.node_id)
        self._states[event.node_id] = event

    def rows(self) -> list[tuple[str, NodeStatus, str]]:
        """(name, status, tokens) per line: each node, then the tasks it runs, indented."""
        shown: list[tuple[str, NodeStatus, str]] = []
        for node_id, event in self._states.items():
            if event is not None and event.parent is not None:
                continue  # shown under its node
            shown.append(_row(node_id, event))
            for task_id in self._tasks_of.get(node_id, ()):
                shown.append(_row(task_id, self._states[task_id], indent="  "))
        return shown

    def _render(self) -> Group:
        table = Table(box=None, pad_edge=False, show_header=False)
        for name, status, tokens in self.rows():
            table.add_row(name, Text(status.value, style=_STYLE[status]), tokens)
        elapsed = time.monotonic() - self._since
        return Group(Text(f"{self._message} ({elapsed:.0f}s)", style="bold"), table)


def _row(node_id: str, event: NodeEvent | None, indent: str = "") -> tuple[str, NodeStatus, str]:
    status = event.status if event else NodeStatus.PENDING
    tokens = f"{event.generated_tokens} tok" if event and event.generated_tokens else ""
    return indent + node_id, status, tokens


def print_run_result(result: RunResult, console: Console) -> None:
    table = Table(title=f"run {result.run_id} · {result.program} · {result.status.value}")
    table.add_column("node", no_wrap=True)
    for column in ("kind", "status", "start s", "time s", "prompt tok", "gen tok", "note"):
        table.add_column(column, justify="right" if "tok" in column or " s" in column else "left")
    for node in result.nodes.values():
        table.add_row(
            node.node_id,
            node.kind,
            Text(node.status.value, style=_STYLE[node.status]),
            _seconds(node.started_s),
            _seconds(node.duration_s),
            str(node.prompt_tokens or ""),
            str(node.generated_tokens or ""),
            node.error or "",
        )
    console.print(table)
    console.print(totals_line(result))
    for use in result.engines.engines if result.engines is not None else ():
        state = "in service" if use.in_service else "out of service"
        console.print(f"engine {use.index} {use.name} ({state}): {use.calls} calls · prompt "
                      f"{use.prompt_tokens} tok, {use.prefix_hit_rate:.0%} from its cache")
    for move in result.engines.moves if result.engines is not None else ():
        console.print(f"moved {move.call_id}: engine {move.from_engine} → {move.to_engine}")
    if result.error:
        console.print(Text(f"error: {result.error}", style="bold red"))
    console.print("[bold]outputs[/bold]")
    console.print_json(json.dumps(result.outputs, default=str))


def totals_line(result: RunResult) -> str:
    """The run's accounting in one line: wall time, tokens, calls, seconds, cost."""
    totals = result.totals()
    cost = totals["cost_usd"]
    return (
        f"wall {result.wall_s:.2f}s · prompt {totals['prompt_tokens']} tok "
        f"({totals['cached_prompt_tokens']} cached) · generated {totals['generated_tokens']} "
        f"tok · {totals['llm_calls']} llm calls · {totals['tool_calls']} tool calls · "
        f"tool {totals['tool_s']:.2f}s · engine {totals['engine_s']:.2f}s · queue "
        f"{totals['queue_s']:.2f}s" + ("" if cost is None else f" · ${cost:.6f}")
    )


def run_result_json(result: RunResult) -> dict[str, Any]:
    """The `--json` shape: stable keys a program can rely on."""
    overrun = result.budget_exceeded
    return {
        "run_id": result.run_id,
        "program": result.program,
        "status": result.status.value,
        "error": result.error,
        "wall_s": result.wall_s,
        "outputs": result.outputs,
        "budget_exceeded": None if overrun is None else {
            "limit": overrun.limit, "allowed": overrun.allowed, "used": overrun.used,
        },
        "totals": result.totals(),
        "nodes": {
            node.node_id: {
                "kind": node.kind,
                "status": node.status.value,
                "start": node.started_s,
                "end": node.ended_s,
                "attempts": node.attempts,
                "prompt_tokens": node.prompt_tokens,
                "generated_tokens": node.generated_tokens,
                "cached_prompt_tokens": node.cached_prompt_tokens,
                "llm_calls": node.llm_calls,
                "tool_calls": node.tool_calls,
                "tool_s": node.tool_s,
                "engine_s": node.engine_s,
                "queue_s": node.queue_s,
                "preemptions": node.preemptions,
                # When the scheduler gave one of its calls' slot away, and gave it back.
                "preempted": [{"at": p.at_s, "resumed": p.resumed_s} for p in node.preempted],
                "cost_usd": node.cost_usd,
                "error": node.error,
                "output": node.output,
            }
            for node in result.nodes.values()
        },
        # Only a run on several engines (--engine) has this record.
        **({"engines": result.engines.to_json()} if result.engines is not None else {}),
    }


def strict_json(payload: Any) -> str:
    """`payload` as RFC 8259 JSON, which strict parsers (JavaScript's, jq's) accept.

    Python's json writes a non-finite float as a bare `Infinity` or `NaN`, which is
    not JSON. Each becomes the string "Infinity", "-Infinity" or "NaN" instead: null
    would read as "no output" (a skipped node's output is null), while the string keeps
    what the run computed and `float()` turns it back. Values JSON has no type for
    (a date, a set) are written as their text.
    """
    return json.dumps(_finite(payload), indent=2, default=str, allow_nan=False)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, Mapping):
        return {_key(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def _key(key: Any) -> Any:
    if isinstance(key, float) and not math.isfinite(key):
        return _finite(key)
    return key if isinstance(key, str | int | float | bool) or key is None else str(key)


def _seconds(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"
