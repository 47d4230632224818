"""What the store hands back, and how a node result becomes a row and back."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskloom.orchestrator.result import NodeResult, NodeStatus, Preemption


class StoredStatus(StrEnum):
    """A stored run's status: `running` until it ends (or until a crash, after which
    `resume` picks it up), then one of the `RunStatus` values."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"


FINISHED_NODE_STATUSES = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED)


@dataclass(frozen=True)
class RunRow:
    """One run as stored: what was asked for, and how it stands."""

    run_id: str
    program: str
    status: StoredStatus
    tenant: str = ""
    origin: str = "api"
    spec_text: str | None = None
    spec_file: str | None = None
    spec_hash: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    policy: str | None = None
    created_at: float = 0.0
    started_at: float | None = None
    updated_at: float = 0.0
    finished_at: float | None = None
    wall_s: float = 0.0
    outputs: dict[str, Any] | None = None
    error: str | None = None
    budget_exceeded: dict[str, Any] | None = None  # a `BudgetOverrun`, as JSON

    def summary(self) -> dict[str, Any]:
        """The short form a listing shows."""
        return {
            "run_id": self.run_id,
            "program": self.program,
            "status": self.status.value,
            "policy": self.policy,
            "created_at": self.created_at,
            "finished_at": self.finished_at,
            "wall_s": self.wall_s,
            "error": self.error,
        }


@dataclass(frozen=True)
class StoredEvent:
    """One event of a run's stream, numbered from 1 per run."""

    run_id: str
    seq: int
    kind: str
    data: dict[str, Any]


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, separators=(",", ":"))


def node_values(run_id: str, node: NodeResult) -> tuple[Any, ...]:
    return (
        run_id, node.node_id, node.kind, node.status.value, dumps(node.output), node.error,
        node.started_s, node.ended_s, node.attempts, node.prompt_tokens,
        node.generated_tokens, node.cached_prompt_tokens, node.llm_calls,
        node.tool_calls, node.tool_s, node.engine_s, node.queue_s, node.cost_usd,
        _preempted_json(node.preempted),
    )


NODE_COLUMNS = (
    "run_id, node_id, kind, status, output, error, started_s, ended_s, attempts, "
    "prompt_tokens, generated_tokens, cached_prompt_tokens, llm_calls, "
    "tool_calls, tool_s, engine_s, queue_s, cost_usd, preempted"
)


def node_from_row(row: sqlite3.Row) -> NodeResult:
    return NodeResult(
        node_id=row["node_id"],
        kind=row["kind"],
        status=NodeStatus(row["status"]),
        output=json.loads(row["output"]) if row["output"] is not None else None,
        error=row["error"],
        started_s=row["started_s"],
        ended_s=row["ended_s"],
        attempts=row["attempts"],
        prompt_tokens=row["prompt_tokens"],
        generated_tokens=row["generated_tokens"],
        cached_prompt_tokens=row["cached_prompt_tokens"],
        llm_calls=row["llm_calls"],
        tool_calls=row["tool_calls"],
        tool_s=row["tool_s"],
        engine_s=row["engine_s"],
        queue_s=row["queue_s"],
        cost_usd=row["cost_usd"],
        preempted=_preempted_from_json(row["preempted"]),
    )


def _preempted_json(preempted: tuple[Preemption, ...]) -> str | None:
    # [[at_s, resumed_s], ...]; NULL for none, as every row stored before version 3 has.
    return dumps([[p.at_s, p.resumed_s] for p in preempted]) if preempted else None


def _preempted_from_json(text: str | None) -> tuple[Preemption, ...]:
    if not text:
        return ()
    return tuple(Preemption(at_s, resumed_s) for at_s, resumed_s in json.loads(text))


def run_from_row(row: sqlite3.Row) -> RunRow:
    return RunRow(
        run_id=row["run_id"],
        program=row["program"],
        status=StoredStatus(row["status"]),
        tenant=row["tenant"],
        origin=row["origin"],
        spec_text=row["spec_text"],
        spec_file=row["spec_file"],
        spec_hash=row["spec_hash"],
        inputs=json.loads(row["inputs"]),
        policy=row["policy"],
        created_at=row["created_at"],
        started_at=row["started_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
        wall_s=row["wall_s"],
        outputs=json.loads(row["outputs"]) if row["outputs"] is not None else None,
        error=row["error"],
        budget_exceeded=json.loads(row["budget_exceeded"]) if row["budget_exceeded"] else None,
    )
