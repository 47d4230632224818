"""From per-program outcomes to one row of results per (policy, rate)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgramOutcome:
    """One program's run. Times are seconds since the (policy, rate) point started."""

    index: int
    kind: str
    arrival_s: float
    finish_s: float
    succeeded: bool
    generated_tokens: int
    prompt_tokens: int
    cached_prompt_tokens: int
    llm_calls: int
    error: str | None = None

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def token_latency_s(self) -> float | None:
        """Program latency per generated token (Autellix's program-level token latency)."""
        return self.latency_s / self.generated_tokens if self.generated_tokens else None


@dataclass(frozen=True)
class EngineReport:
    """What the engines say about themselves; None where a backend cannot tell."""

    busy_fraction: float | None = None
    preemptions: int | None = None
    steps: int | None = None
    # Several real engines (`--engine URL`s): each one's URL, the calls it finished, and
    # its streams that failed (each resumed on another engine).
    engine_names: tuple[str, ...] | None = None
    calls_per_engine: tuple[int, ...] | None = None
    failed_attempts_per_engine: tuple[int, ...] | None = None


@dataclass(frozen=True)
class BenchPoint:
    """What was run at one point: the setting a row belongs to."""

    workload: str
    policy: str
    rate: float
    backend: str
    engines: int
    seed: int


@dataclass(frozen=True)
class BenchRow:
    """One row of `results.json`. Latency figures cover the programs that succeeded."""

    workload: str
    policy: str
    rate: float
    programs: int
    mean_latency_s: float | None
    p50_latency_s: float | None
    p95_latency_s: float | None
    p99_latency_s: float | None
    max_latency_s: float | None
    mean_token_latency_s: float | None
    throughput_programs_per_s: float | None
    preemptions: int | None
    generated_tokens: int
    busy_fraction: float | None
    backend: str
    engines: int
    seed: int
    failed_programs: int
    llm_calls: int
    prompt_tokens: int
    cached_prompt_tokens: int
    throughput_tokens_per_s: float | None
    makespan_s: float | None
    engine_steps: int | None
    engine_names: tuple[str, ...] | None = None
    calls_per_engine: tuple[int, ...] | None = None
    failed_attempts_per_engine: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BenchRow:
        lists = {name: tuple(value) for name in _PER_ENGINE_FIELDS
                 if isinstance(value := data.get(name), list)}
        return cls(**{**data, **lists})


_PER_ENGINE_FIELDS = ("engine_names", "calls_per_engine", "failed_attempts_per_engine")


def summarize(
    point: BenchPoint, outcomes: Sequence[ProgramOutcome], engine: EngineReport
) -> BenchRow:
    succeeded = [o for o in outcomes if o.succeeded]
    latencies = sorted(o.latency_s for o in succeeded)
    token_latencies = [t for o in succeeded if (t := o.token_latency_s) is not None]
    makespan = _makespan(outcomes)
    generated = sum(o.generated_tokens for o in outcomes)
    return BenchRow(
        workload=point.workload,
        policy=point.policy,
        rate=point.rate,
        programs=len(outcomes),
        mean_latency_s=_mean(latencies),
        p50_latency_s=percentile(latencies, 50),
        p95_latency_s=percentile(latencies, 95),
        p99_latency_s=percentile(latencies, 99),
        max_latency_s=latencies[-1] if latencies else None,
        mean_token_latency_s=_mean(token_latencies),
        throughput_programs_per_s=_per_second(len(succeeded), makespan),
        preemptions=engine.preemptions,
        generated_tokens=generated,
        busy_fraction=engine.busy_fraction,
        backend=point.backend,
        engines=point.engines,
        seed=point.seed,
        failed_programs=len(outcomes) - len(succeeded),
        llm_calls=sum(o.llm_calls for o in outcomes),
        prompt_tokens=sum(o.prompt_tokens for o in outcomes),
        cached_prompt_tokens=sum(o.cached_prompt_tokens for o in outcomes),
        throughput_tokens_per_s=_per_second(generated, makespan),
        makespan_s=makespan,
        engine_steps=engine.steps,
        engine_names=engine.engine_names,
        calls_per_engine=engine.calls_per_engine,
        failed_attempts_per_engine=engine.failed_attempts_per_engine,
    )


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """The q-th percentile of ascending values, interpolating linearly between ranks
    (numpy's default); None for no values."""
    if not sorted_values:
        return None
    if not 0 <= q <= 100:
        raise ValueError(f"a percentile is between 0 and 100, got {q}")
    rank = (len(sorted_values) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    weight = rank - low
    return sorted_values[low] * (1 - weight) + sorted_values[high] * weight


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _makespan(outcomes: Sequence[ProgramOutcome]) -> float | None:
    """From the first arrival to the last finish: the span the throughput is over."""
    if not outcomes:
        return None
    return max(o.finish_s for o in outcomes) - min(o.arrival_s for o in outcomes)


def _per_second(count: int, seconds: float | None) -> float | None:
    return count / seconds if seconds else None
