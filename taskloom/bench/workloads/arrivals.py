"""Program arrival times: a Poisson process at a given rate, from a seed."""

from __future__ import annotations

import random

from taskloom.bench.workloads.base import WorkloadError


def poisson_arrivals(rate: float, count: int, seed: int) -> list[float]:
    """`count` arrival times in seconds from 0, with exponential gaps of mean 1/`rate`.

    The same (rate, count, seed) always gives the same times, and the times for a
    larger count extend those for a smaller one.
    """
    if rate <= 0:
        raise WorkloadError(f"the arrival rate must be positive, got {rate:g}")
    if count < 0:
        raise WorkloadError(f"the number of programs cannot be negative, got {count}")
    rng = random.Random(f"arrivals/{seed}")
    times: list[float] = []
    now = 0.0
    for _ in range(count):
        now += rng.expovariate(rate)
        times.append(now)
    return times
