"""What a run produces: every node's output, status, times, tokens and costs.

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
class Preemption:
    """One LLM call's time off its engine: the scheduler gave its slot to a call that
    ranked better at `at_s`, and it went on at `resumed_s` (None: it ended first).
    Seconds since the run started."""

    at_s: float
    resumed_s: float | None = None


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
    # The node's accounting beyond tokens. A plan node's tasks are counted in the plan
    # node itself (as its planner's tokens are), not in the task results, so the nodes
    # of a run add up to its totals. Seconds are summed over calls, so calls that ran
    # side by side can add up to more than the node's duration.
    tool_calls: int = 0
    tool_s: float = 0.0
    engine_s: float = 0.0  # LLM calls from their admission by the scheduler to their end
    queue_s: float = 0.0  # LLM calls waiting in the scheduler before admission
    cost_usd: float | None = None  # with a price table only
    preempted: tuple[Preemption, ...] = ()  # of all its LLM calls, by `at_s`

    @property
    def preemptions(self) -> int:
        return len(self.preempted)

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return self.ended_s - self.started_s


class RunStatus(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BUDGET_EXCEEDED = "budget_exceeded"


@dataclass(frozen=True)
class BudgetOverrun:
    """The limit a run crossed (a name of `taskloom.program.budget.LIMIT_NAMES`), what
    it allowed and what had been used when the run was stopped."""

    limit: str
    allowed: float
    used: float

    def describe(self) -> str:
        if self.limit == "wall_s":  # time is not spent in steps: it runs out
            return f"budget exceeded: wall_s, the run reached its limit of {self.allowed:g} s"
        return f"budget exceeded: {self.limit} {self.used:g} > {self.allowed:g}"


ACCOUNTING_FIELDS = (
    "prompt_tokens", "cached_prompt_tokens", "generated_tokens", "llm_calls",
    "tool_calls", "tool_s", "engine_s", "queue_s", "preemptions",
)
"""The per-node counters that add up to a run's totals (`RunResult.totals`)."""


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
    budget_exceeded: BudgetOverrun | None = None

    @property
    def prompt_tokens(self) -> int:
        return sum(n.prompt_tokens for n in self.nodes.values())

    @property
    def generated_tokens(self) -> int:
        return sum(n.generated_tokens for n in self.nodes.values())

    @property
    def llm_calls(self) -> int:
        return sum(n.llm_calls for n in self.nodes.values())

    @property
    def cost_usd(self) -> float | None:
        """The run's cost; None when it was run without a price table."""
        costs = [n.cost_usd for n in self.nodes.values() if n.cost_usd is not None]
        return sum(costs) if costs else None

    def totals(self) -> dict[str, Any]:
        """Every accounting counter summed over the nodes, and the cost."""
        totals: dict[str, Any] = {
            name: sum(getattr(n, name) for n in self.nodes.values())
            for name in ACCOUNTING_FIELDS
        }
        totals["cost_usd"] = self.cost_usd
        return totals

    def with_status(self, status: RunStatus, error: str | None) -> RunResult:
        return dataclasses.replace(self, status=status, error=error)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        nodes = {
            node_id: NodeResult(**{
                **node, "status": NodeStatus(node["status"]),
                "preempted": tuple(Preemption(**p) for p in node.get("preempted", ())),
            })
            for node_id, node in data.get("nodes", {}).items()
        }
        overrun = data.get("budget_exceeded")
        engines = EnginesReport.from_dict(data["engines"]) if data.get("engines") else None
        return cls(**{
            **data, "status": RunStatus(data["status"]), "nodes": nodes, "engines": engines,
            "budget_exceeded": BudgetOverrun(**overrun) if overrun else None,
        })
