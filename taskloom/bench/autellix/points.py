"""One point: a (workload, variant, rate) run on fresh simulated engines, as a record."""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from taskloom.backends.base import Backend
from taskloom.backends.sim import H100_LLAMA3_8B_ENGINE, SimBackend, SimEngineConfig, SimStats
from taskloom.bench.autellix.variants import Variant, variant_scheduler
from taskloom.bench.metrics import EngineReport, ProgramOutcome, percentile
from taskloom.bench.runner import (
    BenchConfig,
    PointRun,
    SimEngines,
    SimSetup,
    run_on_virtual_time,
    run_point,
)
from taskloom.bench.workloads import Workload, WorkloadOptions, build_workload
from taskloom.orchestrator.scheduler import POLICY_REGISTRY, ProgramAwareScheduler

ENGINES: dict[str, SimEngineConfig] = {
    "h100": H100_LLAMA3_8B_ENGINE,
    # The same H100 and model with a KV cache of 16k tokens (1,024 blocks of 16) instead
    # of ~447k: what `gpu_memory_utilization` 0.26 leaves (16.1 GB weights + 4 GB +
    # 2.1 GB of KV cache, out of 85.5 GB), e.g. on a GPU shared with other models. A few
    # agent contexts fill it, so the engine's batch is bounded by memory, it preempts,
    # and its waiting queue, where order matters, fills under load: the memory-bound
    # regime in which Autellix reports its gains. Not the default; rows are labelled.
    "h100-kv16k": replace(H100_LLAMA3_8B_ENGINE, num_kv_blocks=1024),
    # The same H100 with max_num_seqs 256, vLLM's default for its offline `LLM` class
    # (and older servers): the batch is bounded by the sequence cap, not by memory.
    "h100-seqs256": replace(H100_LLAMA3_8B_ENGINE, max_num_seqs=256),
}
"""Simulated engine regimes (`--engine`); every engine of a point gets the same one."""

STREAM_INTERVAL = int(os.environ.get("AUTELLIX_STREAM_INTERVAL", "16"))
"""Tokens per streamed chunk (vLLM's `stream_interval`). Finish times are the same as
token by token; a larger interval lets the simulator sleep over runs of decode steps,
and the scheduler sees a call's progress (demotion) every 16 tokens instead of every
one, a small fraction of any quantum."""


@dataclass(frozen=True)
class PointSpec:
    workload: str
    programs: int
    rate: float
    variant: Variant
    engines: int = 1
    seed: int = 0
    group: str = "policies"
    engine: str = "h100"
    mixed_coding_agent: bool = False

    @property
    def options(self) -> WorkloadOptions:
        return WorkloadOptions(mixed_coding_agent=self.mixed_coding_agent)

    @property
    def workload_label(self) -> str:
        """The workload's name in records and reports: mixed with coding-agent sessions
        is a workload of its own, never averaged with plain mixed."""
        if self.mixed_coding_agent and self.workload == "mixed":
            return "mixed+coding-agent"
        return self.workload


class RecordingSimEngines(SimEngines):
    """Fresh simulated engines that keep their final counters for the record."""

    def __init__(self, setup: SimSetup, count: int = 1) -> None:
        super().__init__(setup, count)
        self.stats: list[SimStats] = []

    def report(self, engines: Sequence[Backend]) -> EngineReport:
        self.stats = [engine.stats() for engine in engines if isinstance(engine, SimBackend)]
        return super().report(engines)


_WORKLOADS: dict[tuple[str, int, int, WorkloadOptions], Workload] = {}


def run_one(spec: PointSpec) -> dict[str, Any]:
    """Run one point in this process; return a JSON-ready record."""
    cache_key = (spec.workload, spec.programs, spec.seed, spec.options)
    if cache_key not in _WORKLOADS:
        _WORKLOADS[cache_key] = build_workload(spec.workload, spec.programs, spec.seed,
                                               spec.options)
    workload = _WORKLOADS[cache_key]
    setup = SimSetup(engine=replace(ENGINES[spec.engine], policy=spec.variant.engine_policy),
                     stream_interval=STREAM_INTERVAL)
    config = BenchConfig(workload=spec.workload, policies=(spec.variant.key,),
                         rates=(spec.rate,), programs=spec.programs, seed=spec.seed, sim=setup,
                         engines=spec.engines, options=spec.options)
    outcomes: list[ProgramOutcome] = []
    started = time.monotonic()
    engines = RecordingSimEngines(setup, spec.engines)
    with POLICY_REGISTRY.registered(spec.variant.key, variant_scheduler(spec.variant, workload)):
        point: PointRun = run_on_virtual_time(run_point, config, workload, spec.variant.key,
                                              spec.rate, engines, outcomes.append)
    row, scheduler = point.row, point.scheduler
    assert isinstance(scheduler, ProgramAwareScheduler)
    stats = scheduler.stats()
    return {
        "group": spec.group,
        "engine": spec.engine,
        "label": spec.variant.label,
        "variant": asdict(spec.variant),
        "row": {**row.to_json(), "workload": spec.workload_label},
        "scheduler": {
            "preemptions": stats.preemptions,
            "demotions": stats.demotions,
            "promotions": stats.promotions,
            "prefix_cache_hit_rate": stats.prefix_cache_hit_rate,
            "engine_hit_rates": [e.prefix_cache_hit_rate for e in stats.engines],
            "dead_engines": list(stats.dead_engines),
        },
        # Most requests each engine ever ran at once: below the cap, nothing waited in
        # taskloom's queue, and the policies cannot differ.
        "engine_peak_running": [sim.peak_running for sim in engines.stats],
        # Seconds each engine spent computing steps, and of those, prefilling prompt
        # tokens the prefix cache did not hold (recomputation included): the ceiling
        # analysis in `capacity_ceiling` and `locality_ceiling` reads them.
        "engine_busy_s": [sim.busy_s for sim in engines.stats],
        "engine_prefill_s": [sim.prefill_tokens * setup.cost.prefill_token_s
                             for sim in engines.stats],
        "steady": latency_stats(steady_window(outcomes)),
        "by_kind": _by_kind(steady_window(outcomes)),
        "wall_s": time.monotonic() - started,
    }


WARMUP_FRACTION = 0.1
"""Share of a point's programs, by arrival order, left out of its latency figures at
each end: the first ones find an empty engine, the last ones one that drains with no
arrivals behind them. The middle is the steady state the arrival rate stands for. Every
program still runs, and `max_latency_s` of the whole row (no program starves) covers
them all."""


def steady_window(outcomes: Iterable[ProgramOutcome]) -> list[ProgramOutcome]:
    ordered = sorted(outcomes, key=lambda outcome: outcome.arrival_s)
    skip = int(len(ordered) * WARMUP_FRACTION)
    return ordered[skip:len(ordered) - skip] if len(ordered) > 2 * skip else ordered


def latency_stats(outcomes: Sequence[ProgramOutcome]) -> dict[str, float | int | None]:
    latencies = sorted(o.latency_s for o in outcomes if o.succeeded)
    return {
        "programs": len(latencies),
        "mean_latency_s": sum(latencies) / len(latencies) if latencies else None,
        "p50_latency_s": percentile(latencies, 50),
        "p95_latency_s": percentile(latencies, 95),
        "p99_latency_s": percentile(latencies, 99),
        "max_latency_s": latencies[-1] if latencies else None,
    }


def _by_kind(outcomes: Iterable[ProgramOutcome]) -> dict[str, dict[str, float]]:
    kinds: dict[str, list[float]] = {}
    for outcome in outcomes:
        if outcome.succeeded:
            kinds.setdefault(outcome.kind, []).append(outcome.latency_s)
    return {
        kind: {"programs": len(values), "mean_latency_s": sum(values) / len(values),
               "max_latency_s": max(values)}
        for kind, values in sorted(kinds.items())
    }
