"""Tool latencies drawn from a configured distribution, the same for the same call.

A call's latency is a function of (seed, tool, arguments), so the plan run and the
ReAct run of one task wait exactly as long for each lookup they both make: the
comparison measures the strategy, not the luck of the draw.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LatencyModel:
    """Log-normal latency: `median_s` with shape `sigma` (0 gives a fixed latency),
    never below `floor_s`."""

    median_s: float
    sigma: float = 0.0
    floor_s: float = 0.0

    def __post_init__(self) -> None:
        if self.median_s < 0 or self.sigma < 0 or self.floor_s < 0:
            raise ValueError("latencies and sigma must not be negative")

    def draw(self, rng: random.Random) -> float:
        if self.sigma == 0 or self.median_s == 0:
            return max(self.floor_s, self.median_s)
        return max(self.floor_s, rng.lognormvariate(math.log(self.median_s), self.sigma))

    def describe(self) -> dict[str, Any]:
        return {
            "distribution": "lognormal" if self.sigma else "fixed",
            "median_s": self.median_s,
            "sigma": self.sigma,
            "floor_s": self.floor_s,
        }


# A web search or encyclopedia API: about half a second, with a long tail.
SEARCH_LATENCY = LatencyModel(median_s=0.5, sigma=0.5, floor_s=0.1)
# Local computation: a few milliseconds.
LOCAL_LATENCY = LatencyModel(median_s=0.005)


@dataclass(frozen=True)
class ToolLatencies:
    """Which distribution each tool's latency is drawn from."""

    per_tool: Mapping[str, LatencyModel] = field(default_factory=dict)
    default: LatencyModel = LOCAL_LATENCY
    seed: int = 0

    def latency(self, tool: str, args: Mapping[str, Any]) -> float:
        model = self.per_tool.get(tool, self.default)
        return model.draw(random.Random(_call_key(self.seed, tool, args)))

    def describe(self) -> dict[str, Any]:
        return {
            "seed": self.seed,
            "default": self.default.describe(),
            **{name: model.describe() for name, model in self.per_tool.items()},
        }


def default_latencies(seed: int = 0, search: LatencyModel = SEARCH_LATENCY) -> ToolLatencies:
    return ToolLatencies(per_tool={"search": search}, default=LOCAL_LATENCY, seed=seed)


def _call_key(seed: int, tool: str, args: Mapping[str, Any]) -> int:
    text = f"{seed}|{tool}|{sorted((k, repr(v)) for k, v in args.items())}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")
