"""What a run produces: every node's output, status, times and tokens.

Plain frozen dataclasses rather than Pydantic models: a run of ten thousand nodes builds
ten thousand of these, and validation would cost more than running the nodes did.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from taskloom.orchestrator.engines_report import EnginesReport


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class NodeResult:
    """One node's outcome. Times are seconds since the run started."""

    node_id: str
    kind: str
    status: NodeStatus
    output: Any = None
    error: str | None = None
    started_s: float | None = None
    ended_s: float | None = None
    attempts: int = 0
    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_prompt_tokens: int = 0
    llm_calls: int = 0

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return self.ended_s - self.started_s


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunResult:
    """A whole run. A failed or cancelled run keeps every output already computed."""

    run_id: str
    program: str
    status: RunStatus
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeResult] = field(default_factory=dict)
    error: str | None = None
    started_at: float = 0.0
    wall_s: float = 0.0
    engines: EnginesReport | None = None  # set for a run on several engines (`--engine`)

    @property
    def prompt_tokens(self) -> int:
        return sum(n.prompt_tokens for n in self.nodes.values())

    @property
    def generated_tokens(self) -> int:
        return sum(n.generated_tokens for n in self.nodes.values())

    @property
    def llm_calls(self) -> int:
        return sum(n.llm_calls for n in self.nodes.values())

    def with_status(self, status: RunStatus, error: str | None) -> RunResult:
        return dataclasses.replace(self, status=status, error=error)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        nodes = {
            node_id: NodeResult(**{**node, "status": NodeStatus(node["status"])})
            for node_id, node in data.get("nodes", {}).items()
        }
        engines = EnginesReport.from_dict(data["engines"]) if data.get("engines") else None
        return cls(**{**data, "status": RunStatus(data["status"]), "nodes": nodes,
                      "engines": engines})
