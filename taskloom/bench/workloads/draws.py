"""Bounded draws for the parameters a workload's data set does not hold."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class LogNormal:
    """A log-normal distribution given by its median and sigma, clipped to [low, high]
    (each bound times `scale` when a draw is scaled)."""

    median: float
    sigma: float
    low: float
    high: float

    def draw(self, rng: random.Random, scale: float = 1.0) -> float:
        value = rng.lognormvariate(math.log(self.median * scale), self.sigma)
        return min(max(value, self.low * scale), self.high * scale)

    def draw_within(self, rng: random.Random) -> float:
        """A draw of the distribution truncated to [low, high]: out-of-range values are
        drawn again rather than clipped, so no mass piles up on a bound."""
        while True:
            value = rng.lognormvariate(math.log(self.median), self.sigma)
            if self.low <= value <= self.high:
                return value
