"""What a run produces: every node's output, status, times and tokens."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class NodeStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"


class NodeResult(BaseModel):
    """One node's outcome. Times are seconds since the run started."""

    model_config = ConfigDict(frozen=True)

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


class RunResult(BaseModel):
    """A whole run. A failed or cancelled run keeps every output already computed."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    program: str
    status: RunStatus
    inputs: dict[str, Any] = Field(default_factory=dict)
    outputs: dict[str, Any] = Field(default_factory=dict)
    nodes: dict[str, NodeResult] = Field(default_factory=dict)
    error: str | None = None
    started_at: float = 0.0
    wall_s: float = 0.0

    @property
    def prompt_tokens(self) -> int:
        return sum(n.prompt_tokens for n in self.nodes.values())

    @property
    def generated_tokens(self) -> int:
        return sum(n.generated_tokens for n in self.nodes.values())
