"""Scale-out on the simulator: per engine count, the highest program rate that meets a
latency target, against linear scaling; and the router's own cost per call.

`taskloom bench WORKLOAD --backend sim --engines 1,2,4,...` runs, for every policy,
engine count N and per-engine rate r, N fresh simulated engines behind one scheduler,
with N x `programs` programs arriving at N x r programs/s. Programs grow with N so that
every point spans the same stretch of virtual time (the same warm-up, the same steady
state, the same drain).

- Latency is the steady-window mean (the middle 80% of programs by arrival), as the
  Autellix benchmark reads it (`autellix.points.steady_window`).
- The target is that benchmark's rule (`TARGET_FACTOR` x a light-load mean), with the
  light load taken on the fewest engines: the policy's own mean at the lowest rate and
  the smallest engine count. One target for every N of a policy. A target given
  (`--target-latency`, e.g. read off an earlier one-engine run) replaces it, so that
  the rates run at every N can all be near the knee, with no light point.
- Each N's rate at the target is interpolated linearly on its own curve
  (`rate_at_latency`); a rate that met the target at every measured rate is a lower
  bound, and says so.
- Efficiency = rate(N) / ((N / N0) x rate(N0)), N0 the smallest count (normally 1).
- Router cost: every decision pass of the scheduler (the balancer's placement,
  admission, preemption) is timed by a `DecisionTimer`; its thread CPU time over the
  point's LLM calls is the router's cost per call.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from taskloom.backends.factory import BackendName
from taskloom.bench.autellix.analysis import TARGET_FACTOR, rate_at_latency
from taskloom.bench.autellix.points import latency_stats, steady_window
from taskloom.bench.metrics import BenchRow, ProgramOutcome
from taskloom.bench.runner import (
    BenchConfig,
    BenchUsageError,
    PointRun,
    ProgramDone,
    SimEngines,
    run_on_virtual_time,
    run_point,
    validate_config,
)
from taskloom.bench.workloads import Workload, build_workload
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.decision_timer import DecisionTimer, per_call_us
from taskloom.orchestrator.scheduler.program_aware import ProgramAwareScheduler

TARGET_RULE = (f"target mean latency = {TARGET_FACTOR:g} x the policy's steady-window mean at "
               "the lowest per-engine rate on the fewest engines (light load); each engine "
               "count's rate at the target is interpolated on its own curve")
GIVEN_TARGET_RULE = ("target mean latency given (--target-latency); each engine count's rate "
                     "at the target is interpolated on its own curve")


def engine_counts(text: str) -> tuple[int, ...]:
    """`--engines`: one count ("4") or several, comma-separated ("1,2,4,8"), ascending
    once parsed. Raises `BenchUsageError` for anything else."""
    counts: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        try:
            count = int(part)
        except ValueError:
            raise BenchUsageError(
                f"--engines takes whole numbers separated by commas, got '{part}'") from None
        if count < 1:
            raise BenchUsageError(f"--engines must be at least 1, got {count}")
        if count in counts:
            raise BenchUsageError(f"--engines lists {count} twice")
        counts.append(count)
    return tuple(sorted(counts))


@dataclass(frozen=True)
class ScalingPoint:
    """One (policy, engine count, rate) run: its row and what the scaling reads off it."""

    row: BenchRow
    rate_per_engine: float
    steady_mean_latency_s: float | None
    decision_passes: int
    decision_cpu_ns: int
    decision_wall_ns: int
    prefix_cache_hit_rate: float | None

    @property
    def router_cpu_us_per_call(self) -> float | None:
        return per_call_us(self.decision_cpu_ns, self.row.llm_calls)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScalingRow:
    """One engine count of one policy."""

    policy: str
    engines: int
    programs: int
    rates_per_engine: tuple[float, ...]
    target_mean_latency_s: float
    rate_at_target: float
    rate_per_engine_at_target: float
    lower_bound: bool  # the target was met at every measured rate
    efficiency: float | None  # rate / ((engines / fewest) x the fewest engines' rate)
    router_cpu_us_per_call: float | None
    router_wall_us_per_call: float | None
    prefix_cache_hit_rate: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScalingResult:
    rule: str
    rows: tuple[ScalingRow, ...]
    points: tuple[ScalingPoint, ...]

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "rows": [row.to_json() for row in self.rows],
                "points": [point.to_json() for point in self.points]}


PointDone = Callable[[ScalingPoint], None]


def run_scaling(
    config: BenchConfig,
    counts: Sequence[int],
    on_program_done: ProgramDone | None = None,
    on_point_done: PointDone | None = None,
    target_latency_s: float | None = None,
) -> ScalingResult:
    """Every (policy, count, rate) point of `config` on the simulator, where
    `config.rates` and `config.programs` are per engine; one row per (policy, count).
    The target is `target_latency_s` if given, else `TARGET_RULE`'s."""
    if config.backend != BackendName.SIM:
        raise BenchUsageError("several --engines counts run on --backend sim only")
    if not counts:
        raise BenchUsageError("give at least one engine count")
    if target_latency_s is not None and not target_latency_s > 0:
        raise BenchUsageError(f"a target latency must be > 0 s, got {target_latency_s:g}")
    validate_config(replace(config, engines=max(counts)))
    workloads: dict[int, Workload] = {}
    points: list[ScalingPoint] = []
    rows: list[ScalingRow] = []
    for policy in config.policies:
        mine: dict[int, list[ScalingPoint]] = {}
        for count in counts:
            if count not in workloads:
                workloads[count] = build_workload(config.workload, config.programs * count,
                                                  config.seed, config.options)
            for rate in config.rates:
                point = _run_scaling_point(config, workloads[count], policy, count, rate,
                                           on_program_done)
                mine.setdefault(count, []).append(point)
                points.append(point)
                if on_point_done is not None:
                    on_point_done(point)
        rows.extend(scaling_rows(policy, mine, target_latency_s))
    rule = TARGET_RULE if target_latency_s is None else GIVEN_TARGET_RULE
    return ScalingResult(rule, tuple(rows), tuple(points))


def _run_scaling_point(config: BenchConfig, workload: Workload, policy: str, count: int,
                       rate_per_engine: float, on_program_done: ProgramDone | None
                       ) -> ScalingPoint:
    rate = rate_per_engine * count
    outcomes: list[ProgramOutcome] = []

    def done(outcome: ProgramOutcome) -> None:
        outcomes.append(outcome)
        if on_program_done is not None:
            on_program_done(outcome)

    timer = DecisionTimer()

    def attach(scheduler: Scheduler) -> None:
        if isinstance(scheduler, ProgramAwareScheduler):
            scheduler.decision_timer = timer

    point_config = replace(config, engines=count, programs=len(workload.programs),
                           rates=(rate,))
    engines = SimEngines(config.sim.for_policy(policy), count)
    run: PointRun = run_on_virtual_time(run_point, point_config, workload, policy, rate,
                                        engines, done, attach)
    scheduler = run.scheduler
    hit_rate = (scheduler.stats().prefix_cache_hit_rate
                if isinstance(scheduler, ProgramAwareScheduler) else None)
    mean = latency_stats(steady_window(outcomes))["mean_latency_s"]
    return ScalingPoint(run.row, rate_per_engine, float(mean) if mean is not None else None,
                        timer.passes, timer.cpu_ns, timer.wall_ns, hit_rate)


def scaling_rows(policy: str, by_count: dict[int, list[ScalingPoint]],
                 target_latency_s: float | None = None) -> list[ScalingRow]:
    """One row per engine count: the rate at the policy's target (`target_latency_s`, or
    `TARGET_RULE`'s) and the efficiency against the fewest engines."""
    fewest = min(by_count)
    target = target_latency_s if target_latency_s is not None else _light_load_target(
        policy, by_count[fewest])
    found: dict[int, tuple[float, bool]] = {}
    for count, points in by_count.items():
        curve = [(p.row.rate, p.steady_mean_latency_s) for p in points
                 if p.steady_mean_latency_s is not None]
        found[count] = rate_at_latency(curve, target) if curve else (0.0, True)
    base_rate = found[fewest][0]
    rows = []
    for count in sorted(by_count):
        points = by_count[count]
        rate, exact = found[count]
        calls = sum(p.row.llm_calls for p in points)
        hits = [p.prefix_cache_hit_rate for p in points if p.prefix_cache_hit_rate is not None]
        rows.append(ScalingRow(
            policy=policy,
            engines=count,
            programs=points[0].row.programs,
            rates_per_engine=tuple(p.rate_per_engine for p in points),
            target_mean_latency_s=target,
            rate_at_target=rate,
            rate_per_engine_at_target=rate / count,
            lower_bound=not exact,
            efficiency=rate / (count / fewest * base_rate) if base_rate else None,
            router_cpu_us_per_call=per_call_us(sum(p.decision_cpu_ns for p in points), calls),
            router_wall_us_per_call=per_call_us(sum(p.decision_wall_ns for p in points), calls),
            prefix_cache_hit_rate=sum(hits) / len(hits) if hits else None,
        ))
    return rows


def _light_load_target(policy: str, fewest: Sequence[ScalingPoint]) -> float:
    light = min(fewest, key=lambda p: p.rate_per_engine)
    if light.steady_mean_latency_s is None:
        raise BenchUsageError(f"{policy}: no program succeeded at the lightest point")
    return TARGET_FACTOR * light.steady_mean_latency_s


def efficiency_text(row: ScalingRow) -> str:
    if row.efficiency is None or math.isnan(row.efficiency):
        return "-"
    return f"{row.efficiency:.2f}"
