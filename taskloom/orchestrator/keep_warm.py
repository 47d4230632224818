"""Keep-warm hints: how long an LLM call's KV is worth keeping across the tool call
that follows it.

When an LLM node is followed in the DAG by a tool node whose result feeds a later LLM
node, the program's next call will resend this call's context plus the tool's output.
An engine that can pin KV (the simulated one; see `taskloom.backends.sim.warm_pins`)
then keeps it for a time-to-live instead of letting other programs evict it while the
tool runs.

TTL policy (`KeepWarmPolicy`): `margin` x the running mean of the past durations of
that tool in this runtime, capped at `cap_s`; before a tool has been seen, `default_s`.
With several such tools after one call (parallel branches), the longest TTL counts.
A pin past its TTL is not dropped on a timer: it is the first to go when KV is short.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from taskloom.program.models import LLMNode, Node, ToolNode


@dataclass(frozen=True)
class KeepWarmPolicy:
    """How a call's time-to-live is set from its tool's expected duration."""

    default_s: float = 5.0
    margin: float = 2.0
    cap_s: float = 60.0

    def __post_init__(self) -> None:
        if not (self.default_s >= 0 and self.margin > 0 and self.cap_s >= 0):
            raise ValueError("KeepWarmPolicy needs default_s >= 0, margin > 0, cap_s >= 0")


@dataclass
class _RunningMean:
    count: int = 0
    mean_s: float = 0.0

    def add(self, seconds: float) -> None:
        self.count += 1
        self.mean_s += (seconds - self.mean_s) / self.count


@dataclass
class ToolDurations:
    """A running mean of each tool's past durations, shared by the runs of one runtime,
    and the keep-warm TTL it gives."""

    policy: KeepWarmPolicy = field(default_factory=KeepWarmPolicy)
    _means: dict[str, _RunningMean] = field(default_factory=dict)

    def observe(self, tool: str, seconds: float) -> None:
        self._means.setdefault(tool, _RunningMean()).add(max(0.0, seconds))

    def expected_s(self, tool: str) -> float | None:
        """The mean duration seen for `tool`; None before it has run."""
        mean = self._means.get(tool)
        return None if mean is None else mean.mean_s

    def ttl_s(self, tools: tuple[str, ...]) -> float | None:
        """The time-to-live for a call followed by `tools`; None when there are none."""
        if not tools:
            return None
        policy = self.policy
        ttls = []
        for tool in tools:
            expected = self.expected_s(tool)
            ttl = policy.default_s if expected is None else policy.margin * expected
            ttls.append(min(policy.cap_s, ttl))
        return max(ttls)


def warm_followers(
    nodes: Mapping[str, Node], dependents: Mapping[str, tuple[str, ...]]
) -> dict[str, tuple[str, ...]]:
    """For each LLM node, the tools of the tool nodes right after it whose result feeds
    an LLM node (the calls whose KV is worth keeping warm); LLM nodes with none are left
    out."""
    followers: dict[str, tuple[str, ...]] = {}
    for node_id, node in nodes.items():
        if not isinstance(node, LLMNode):
            continue
        tools = tuple(sorted({
            after.tool
            for tool_id in dependents[node_id]
            if isinstance(after := nodes[tool_id], ToolNode)
            and any(isinstance(nodes[later], LLMNode) for later in dependents[tool_id])
        }))
        if tools:
            followers[node_id] = tools
    return followers
