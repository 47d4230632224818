"""The router's own cost: time spent deciding where and when calls run.

A benchmark attaches a `DecisionTimer` to a scheduler to measure what one placement and
dispatch pass costs (the balancer's ranking, admission, preemption); a scheduler without
one (every run outside that benchmark) reads no clock for it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from types import TracebackType


def per_call_us(total_ns: int, calls: int) -> float | None:
    """Nanoseconds spent over `calls` calls, in microseconds a call; None without calls."""
    return total_ns / calls / 1000 if calls else None


@dataclass
class DecisionTimer:
    """Accumulates the thread CPU time and wall time of every decision pass it wraps.

    Thread CPU time is the figure to read on a shared machine: other processes do not
    inflate it. Each pass also counts part of its own four clock reads (well under a
    microsecond on Linux's vDSO clocks)."""

    passes: int = 0
    cpu_ns: int = 0
    wall_ns: int = 0
    _cpu_start: int = 0
    _wall_start: int = 0

    def __enter__(self) -> DecisionTimer:
        self._wall_start = time.perf_counter_ns()
        self._cpu_start = time.thread_time_ns()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.cpu_ns += time.thread_time_ns() - self._cpu_start
        self.wall_ns += time.perf_counter_ns() - self._wall_start
        self.passes += 1

    def cpu_us_per(self, calls: int) -> float | None:
        """Decision CPU time per call, in microseconds."""
        return per_call_us(self.cpu_ns, calls)

    def wall_us_per(self, calls: int) -> float | None:
        return per_call_us(self.wall_ns, calls)
