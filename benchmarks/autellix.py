"""Program-aware scheduling (Autellix) on the simulated H100: policies side by side.

Every point is one (workload, scheduler variant, arrival rate) run of the benchmark
runner on fresh simulated engines (Llama 3 8B on an H100, `H100_LLAMA3_8B`), on virtual
time, so a seed fixes the programs and the arrivals. Points run in parallel processes
(`--jobs`).

    # policies side by side, one engine, four workloads, light to saturated rates
    .venv/bin/python benchmarks/autellix.py run --out results/autellix
    # the load balancer: four engines, locality against round-robin
    .venv/bin/python benchmarks/autellix.py balance --out results/autellix
    # pick levels, boundaries, beta and the in-flight cap
    .venv/bin/python benchmarks/autellix.py sweep --out results/autellix
    # tables and plots again from the JSON files
    .venv/bin/python benchmarks/autellix.py report results/autellix

    # the same on an engine whose KV cache (16k tokens) binds: a labelled regime
    .venv/bin/python benchmarks/autellix.py run --engine h100-kv16k --workloads mixed

Outputs: `points.json` (every point: the runner's row plus the scheduler's counters,
per-kind latencies, the engines' peak concurrency, busy and prefill seconds),
`summary.json` (throughput at equal mean latency, p95/p99, max latency, balancer gain,
and two ceilings read off the engines: the most programs/s any point's token throughput
allows, against fcfs's rate at the target, and the share of round-robin's engine time
that locality could save), `latency_<group>_<workload>[_<engine>].png` and `sweep.md`.
Latency figures cover the middle 80% of each point's programs by arrival
(`WARMUP_FRACTION`); the max covers every program. The headline ratio is read at one
stated target (`TARGET_RULE`: twice fcfs's mean at its lowest measured rate).

The baseline `fcfs` is what vLLM does by default: arrival order, every call handed to
the engine at once (the cap is the engine's `max_num_seqs`), the engine's own queue in
arrival order. The program-aware variants hold calls in taskloom's queue beyond the cap,
preempt by abort and resume, and pass their level to the engine as its priority.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from taskloom.backends.base import Backend, GenerateRequest
from taskloom.backends.sim import (
    H100_LLAMA3_8B_ENGINE,
    QueuePolicy,
    SimBackend,
    SimEngineConfig,
    SimStats,
)
from taskloom.bench.metrics import EngineReport, ProgramOutcome, percentile
from taskloom.bench.runner import (
    BenchConfig,
    SimEngines,
    SimSetup,
    run_on_virtual_time,
    run_point,
)
from taskloom.bench.workloads import Workload, build_workload
from taskloom.orchestrator.scheduler import ProgramAwareScheduler, register_policy
from taskloom.orchestrator.scheduler.balancer import balancer_named
from taskloom.orchestrator.scheduler.program_aware import DEFAULT_MAX_IN_FLIGHT
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.program.models import LLMNode, MapNode, Program

WORKLOADS = ("chat", "tool-use", "tree-search", "mixed")
POLICIES = ("fcfs", "mlfq", "plas", "atlas", "sjf-oracle")
# Programs per point and rates (programs/s) from light to past saturation, per workload.
# A tree search is ~40x a chat in decode work, so it gets fewer programs and lower rates.
# The rates are spaced finely around each workload's knee on the simulated H100 (found
# with small runs first); the programs per point are as many as the shared 2-core
# machine allowed, so the first and last 10% (see WARMUP_FRACTION) can be left out.
DEFAULT_PROGRAMS = {"chat": 200, "tool-use": 300, "tree-search": 40, "mixed": 300}
DEFAULT_RATES = {
    "chat": (1.0, 2.5, 4.0, 5.5),
    "tool-use": (4.0, 8.0, 12.0, 16.0),
    "tree-search": (0.2, 0.4, 0.6, 0.8),
    "mixed": (1.0, 1.5, 2.0, 2.25, 2.5, 3.0),
}


ENGINES: dict[str, SimEngineConfig] = {
    "h100": H100_LLAMA3_8B_ENGINE,
    # The same H100 and model with a KV cache of 16k tokens (1,024 blocks of 16) instead
    # of ~447k: what `gpu_memory_utilization` 0.26 leaves (16.1 GB weights + 4 GB +
    # 2.1 GB of KV cache, out of 85.5 GB), e.g. on a GPU shared with other models. A few
    # agent contexts fill it, so the engine's batch is bounded by memory, it preempts,
    # and its waiting queue, where order matters, fills under load: the memory-bound
    # regime in which Autellix reports its gains. Not the default; rows are labelled.
    "h100-kv16k": replace(H100_LLAMA3_8B_ENGINE, num_kv_blocks=1024),
}
"""Simulated engine regimes (`--engine`); every engine of a point gets the same one."""

STREAM_INTERVAL = int(os.environ.get("AUTELLIX_STREAM_INTERVAL", "16"))
"""Tokens per streamed chunk (vLLM's `stream_interval`). Finish times are the same as
token by token; a larger interval lets the simulator sleep over runs of decode steps,
and the scheduler sees a call's progress (demotion) every 16 tokens instead of every
one, a small fraction of any quantum."""


# ------------------------------------------------------------------ scheduler variants


@dataclass(frozen=True)
class Variant:
    """A scheduler configuration, registered under its own policy name."""

    label: str
    policy: str
    balancer: str = "locality"
    max_in_flight: int | None = DEFAULT_MAX_IN_FLIGHT
    boundaries_s: tuple[float, ...] | None = None
    beta: float | None = None
    engine_policy: QueuePolicy = "priority"

    @property
    def key(self) -> str:
        # Spelled with the effective values, so a variant that names the defaults is
        # the same point as one that leaves them out.
        return f"autellix:{self.label}:{self.setting}"

    @property
    def setting(self) -> str:
        """What the scheduler does, whatever the label."""
        queues = self.queues() or QueueConfig()
        bounds = "-".join(map(str, queues.boundaries_s))
        return (f"{self.policy}:{self.balancer}:{self.max_in_flight}:{bounds}:{queues.beta}:"
                f"{self.engine_policy}")

    def queues(self) -> QueueConfig | None:
        if self.boundaries_s is None and self.beta is None:
            return None
        base = QueueConfig()
        return QueueConfig(
            boundaries_s=self.boundaries_s if self.boundaries_s is not None else base.boundaries_s,
            beta=self.beta if self.beta is not None else base.beta,
        )


def vllm_default() -> Variant:
    return Variant("fcfs", "fcfs", balancer="round-robin", max_in_flight=None,
                   engine_policy="fcfs")


def standard_variant(name: str) -> Variant:
    if name == "fcfs":
        return vllm_default()
    if name.endswith("-rr"):
        return Variant(name, name.removesuffix("-rr"), balancer="round-robin")
    return Variant(name, name)


_LAST_SCHEDULER: list[ProgramAwareScheduler] = []


def register_variant(variant: Variant, workload: Workload) -> None:
    oracle = program_oracle(workload) if variant.policy == "sjf-oracle" else None

    def factory(backends: Sequence[Backend]) -> ProgramAwareScheduler:
        scheduler = ProgramAwareScheduler(
            backends,
            variant.policy,
            queues=variant.queues(),
            max_in_flight=_cap(variant.max_in_flight, backends),
            balancer=balancer_named(variant.balancer),
            oracle=oracle,
        )
        _LAST_SCHEDULER[:] = [scheduler]
        return scheduler

    register_policy(variant.key, factory)


def _cap(cap: int | None, backends: Sequence[Backend]) -> int | list[int]:
    if cap is None:
        return [backend.capacity() for backend in backends]
    return [min(cap, backend.capacity()) for backend in backends]


# ------------------------------------------------------------------ the SJF oracle


def program_oracle(workload: Workload) -> Callable[[GenerateRequest], float]:
    """Each program's true remaining decode work, in tokens: its total, less the
    `max_tokens` of its calls that arrived before this one (the simulated engine answers
    with exactly `max_tokens`)."""
    totals = {f"p{index:05d}": program_tokens(p.program) for index, p in
              enumerate(workload.programs)}
    spent: dict[str, float] = {}

    def remaining(request: GenerateRequest) -> float:
        before = spent.get(request.program_id, 0.0)
        spent[request.program_id] = before + request.sampling.max_tokens
        return max(totals.get(request.program_id, 0.0) - before, 0.0)

    return remaining


def program_tokens(program: Program) -> float:
    total = 0.0
    for node in program.nodes.values():
        if isinstance(node, LLMNode):
            total += node_tokens(node, program)
        elif isinstance(node, MapNode) and isinstance(node.node, LLMNode):
            total += node_tokens(node.node, program) * _map_width(node, program)
    return total


def node_tokens(node: LLMNode, program: Program) -> float:
    max_tokens = node.max_tokens or program.defaults.max_tokens
    return float(max_tokens * node.n)


def _map_width(node: MapNode, program: Program) -> int:
    # The workloads map over the samples of one LLM node (`{{ expand_3 }}`).
    for name in re.findall(r"\{\{\s*([A-Za-z_][\w-]*)", node.over):
        source = program.nodes.get(name)
        if isinstance(source, LLMNode):
            return source.n
    return 1


# ------------------------------------------------------------------ running points


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


class RecordingSimEngines(SimEngines):
    """Fresh simulated engines that keep their final counters for the record."""

    def __init__(self, setup: SimSetup, count: int = 1) -> None:
        super().__init__(setup, count)
        self.stats: list[SimStats] = []

    def report(self, engines: Sequence[Backend]) -> EngineReport:
        self.stats = [engine.stats() for engine in engines if isinstance(engine, SimBackend)]
        return super().report(engines)


_WORKLOADS: dict[tuple[str, int, int], Workload] = {}


def run_one(spec: PointSpec) -> dict[str, Any]:
    """Run one point in this process; return a JSON-ready record."""
    cache_key = (spec.workload, spec.programs, spec.seed)
    if cache_key not in _WORKLOADS:
        _WORKLOADS[cache_key] = build_workload(spec.workload, spec.programs, spec.seed)
    workload = _WORKLOADS[cache_key]
    register_variant(spec.variant, workload)
    setup = SimSetup(engine=replace(ENGINES[spec.engine], policy=spec.variant.engine_policy),
                     stream_interval=STREAM_INTERVAL)
    config = BenchConfig(workload=spec.workload, policies=(spec.variant.key,),
                         rates=(spec.rate,), programs=spec.programs, seed=spec.seed, sim=setup,
                         engines=spec.engines)
    outcomes: list[ProgramOutcome] = []
    started = time.monotonic()
    engines = RecordingSimEngines(setup, spec.engines)
    row = run_on_virtual_time(run_point, config, workload, spec.variant.key, spec.rate,
                              engines, outcomes.append)
    stats = _LAST_SCHEDULER[0].stats()
    return {
        "group": spec.group,
        "engine": spec.engine,
        "label": spec.variant.label,
        "variant": asdict(spec.variant),
        "row": row.to_json(),
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


def run_all(specs: Sequence[PointSpec], jobs: int, out: Path) -> list[dict[str, Any]]:
    """Run the points (in `jobs` processes), appending each record to `points.json` as it
    finishes, so a long run that stops keeps what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "points.json"
    records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    done = {_record_id(r) for r in records}
    todo = [s for s in specs if _spec_id(s) not in done]
    print(f"{len(todo)} points to run ({len(specs) - len(todo)} already in {path})", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for record in pool.map(run_one, todo):
            records.append(record)
            path.write_text(json.dumps(records, indent=1) + "\n")
            _print_record(record)
    return records


def _spec_id(spec: PointSpec) -> str:
    return f"{spec.group}|{spec.workload}|{spec.programs}|{spec.rate}|{spec.engines}|" \
           f"{spec.seed}|{spec.variant.key}|{spec.engine}"


def _record_id(record: dict[str, Any]) -> str:
    row, variant = record["row"], Variant(**_variant_fields(record["variant"]))
    return f"{record['group']}|{row['workload']}|{row['programs']}|{row['rate']}|" \
           f"{row['engines']}|{row['seed']}|{variant.key}|{record.get('engine', 'h100')}"


def _variant_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if fields.get("boundaries_s") is not None:
        fields["boundaries_s"] = tuple(fields["boundaries_s"])
    return fields


def _print_record(record: dict[str, Any]) -> None:
    row, sched = record["row"], record["scheduler"]
    print(
        f"[{record['group']}] {row['workload']:11} {record['label']:12} rate={row['rate']:<5g} "
        f"steady mean={_fmt(_steady(record, 'mean_latency_s'))} "
        f"p95={_fmt(_steady(record, 'p95_latency_s'))} "
        f"p99={_fmt(_steady(record, 'p99_latency_s'))} max(all)={_fmt(row['max_latency_s'])} "
        f"tok/s={row['throughput_tokens_per_s']:.0f} engine-preempt={row['preemptions']} "
        f"failed={row['failed_programs']} preempt={sched['preemptions']} "
        f"hit={sched['prefix_cache_hit_rate']:.2f} wall={record['wall_s']:.0f}s",
        flush=True,
    )


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.1f}"


# ------------------------------------------------------------------ analysis


def rate_at_latency(curve: Sequence[tuple[float, float]], target: float) -> tuple[float, bool]:
    """The arrival rate at which a policy's mean latency reaches `target`, interpolated
    linearly between measured rates. (rate, exact): when the curve stays below the
    target at every measured rate, the highest rate is returned with exact=False (a lower
    bound); when it starts above, (0, True)."""
    points = sorted(curve)
    if points[0][1] > target:
        return 0.0, True
    for (r0, l0), (r1, l1) in itertools.pairwise(points):
        if l0 <= target <= l1 and l1 > l0:
            return r0 + (r1 - r0) * (target - l0) / (l1 - l0), True
    return points[-1][0], False


def throughput_at_equal_latency(
    curves: dict[str, list[tuple[float, float]]], baseline: str, policy: str
) -> list[dict[str, Any]]:
    """For every measured point of `baseline`: the rate `policy` sustains at the same
    mean latency, and the ratio to the baseline's rate."""
    rows = []
    lowest = min(rate for rate, _ in curves[policy])
    for rate, latency in sorted(curves[baseline]):
        if rate < lowest:
            continue  # `policy` was not run that lightly loaded: nothing to read off
        other, exact = rate_at_latency(curves[policy], latency)
        rows.append({"baseline_rate": rate, "mean_latency_s": latency, "rate": other,
                     "ratio": other / rate if rate else math.nan,
                     "lower_bound": not exact})
    return rows


TARGET_FACTOR = 2.0
TARGET_RULE = (f"target mean latency = {TARGET_FACTOR:g} x the fcfs steady-state mean at "
               "the lowest measured rate (light load); each policy's rate at that latency "
               "is interpolated on its own curve")
BASELINES = ("fcfs", "mlfq", "plas-rr", "atlas-rr")
COMPARED = ("atlas", "plas", "sjf-oracle", "mlfq")


def at_target(curves: dict[str, list[tuple[float, float]]]) -> dict[str, Any] | None:
    """The headline: every policy's rate at the target latency of `TARGET_RULE`, and
    its ratio to each baseline's."""
    if "fcfs" not in curves:
        return None
    target = TARGET_FACTOR * min(curves["fcfs"])[1]
    rates = {}
    for label, curve in curves.items():
        rate, exact = rate_at_latency(curve, target)
        rates[label] = {"rate": rate, "lower_bound": not exact}
    ratios = {
        f"{policy}/{baseline}": {
            "ratio": rates[policy]["rate"] / rates[baseline]["rate"]
            if rates[baseline]["rate"] else math.nan,
            "lower_bound": rates[policy]["lower_bound"],
            "upper_bound": rates[baseline]["lower_bound"],
        }
        for baseline in BASELINES if baseline in rates
        for policy in rates if policy != baseline
    }
    return {"rule": TARGET_RULE, "target_mean_latency_s": target, "rates": rates,
            "ratios": ratios}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {name: _summarize_workload(points) for name, points in by_setting(records).items()}


def by_setting(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The points of each (group, workload, engine regime), named `group/workload`, with
    `@engine` appended for a regime other than the default."""
    settings: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r["group"], r["row"]["workload"])):
        engine = record.get("engine", "h100")
        name = f"{record['group']}/{record['row']['workload']}"
        name += "" if engine == "h100" else f"@{engine}"
        settings.setdefault(name, []).append(record)
    return settings


def _steady(point: dict[str, Any], key: str) -> Any:
    """A steady-window figure; rows from before the window existed fall back to all
    programs."""
    steady = point.get("steady")
    return steady[key] if steady is not None else point["row"][key]


def _summarize_workload(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    curves: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        latency = _steady(point, "mean_latency_s")
        if latency is not None:
            curves.setdefault(point["label"], []).append((point["row"]["rate"], latency))
    table = {
        point["label"] + f"@{point['row']['rate']:g}": {
            key: _steady(point, key)
            for key in ("mean_latency_s", "p50_latency_s", "p95_latency_s", "p99_latency_s")
        } | {
            key: point["row"][key]
            for key in ("max_latency_s", "throughput_tokens_per_s", "failed_programs",
                        "programs", "preemptions")
        } | {"scheduler_preemptions": point["scheduler"]["preemptions"],
             "promotions": point["scheduler"]["promotions"],
             "prefix_cache_hit_rate": point["scheduler"]["prefix_cache_hit_rate"],
             "by_kind": point["by_kind"]}
        for point in sorted(points, key=lambda p: (p["label"], p["row"]["rate"]))
    }
    ratios = {
        f"{policy}/{baseline}": throughput_at_equal_latency(curves, baseline, policy)
        for baseline in BASELINES
        if baseline in curves and points[0]["group"] != "sweep"
        for policy in curves
        if policy != baseline and policy in COMPARED
    }
    worst = {
        label: max(p["row"]["max_latency_s"] or 0.0 for p in points if p["label"] == label)
        for label in curves
    }
    # A sweep measures every variant at one rate: there is no curve to read a rate from.
    headline = at_target(curves) if points[0]["group"] != "sweep" else None
    return {"at_target": headline, "throughput_at_equal_mean_latency": ratios,
            "max_latency_any_rate_s": worst,
            "capacity_ceiling": capacity_ceiling(points, headline),
            "locality_ceiling": locality_ceiling(points),
            "points": table}


def capacity_ceiling(
    points: Sequence[dict[str, Any]], headline: dict[str, Any] | None
) -> dict[str, Any] | None:
    """How far any scheduler could go past fcfs at the target, from what the engines did.

    A policy that sustains rate r for long generates r x (tokens per program) tokens/s,
    whatever it does with them. The most tokens/s any point produced (every policy, the
    SJF oracle and the saturated rates included) divided by the tokens per program is a
    measured ceiling on the sustainable rate; divided by fcfs's rate at the target, a
    ceiling on every policy's gain there. It holds where that point kept its engines
    busy (`engine_busy_fraction` near 1): larger batches would only add the little that
    the step cost model grants them. A ceiling below 1 says fcfs's rate at the target is
    itself past what the engine sustains, met only because a finite run ends first."""
    if headline is None or "fcfs" not in headline["rates"]:
        return None
    best = max(points, key=lambda p: p["row"]["throughput_tokens_per_s"])
    row = best["row"]
    per_program = row["generated_tokens"] / row["programs"]
    rate = row["throughput_tokens_per_s"] / per_program
    fcfs_rate = headline["rates"]["fcfs"]["rate"]
    busy = best.get("engine_busy_s")
    return {
        "rule": "most generated tokens/s of any point / generated tokens per program",
        "max_tokens_per_s": row["throughput_tokens_per_s"],
        "at": f"{best['label']}@{row['rate']:g}",
        "engine_busy_fraction": (sum(busy) / len(busy) / (row["generated_tokens"]
                                 / row["throughput_tokens_per_s"])) if busy else None,
        "tokens_per_program": per_program,
        "ceiling_rate": rate,
        "fcfs_rate_at_target": fcfs_rate,
        "fcfs_tokens_per_s_at_target": fcfs_rate * per_program,
        "ceiling_over_fcfs_at_target": rate / fcfs_rate if fcfs_rate else None,
    }


def locality_ceiling(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate: what round-robin spends prefilling against what locality spends, as a
    share of round-robin's engine time. Where the KV cache does not bind (no engine
    preemptions), locality saves re-prefills and nothing else, so 1 / (1 - that share)
    bounds its throughput gain over round-robin. Where it binds, locality also saves the
    memory of contexts held twice, which this does not count."""
    rows = []
    for rate in sorted({p["row"]["rate"] for p in points}):
        at_rate = {p["label"]: p for p in points if p["row"]["rate"] == rate}
        local, spread = at_rate.get("plas"), at_rate.get("plas-rr")
        if local is None or spread is None or "engine_busy_s" not in spread:
            continue
        busy = sum(spread["engine_busy_s"])
        saved = sum(spread["engine_prefill_s"]) - sum(local["engine_prefill_s"])
        rows.append({"rate": rate, "round_robin_busy_s": busy,
                     "round_robin_prefill_s": sum(spread["engine_prefill_s"]),
                     "locality_prefill_s": sum(local["engine_prefill_s"]),
                     "saved_share": saved / busy if busy else None,
                     "gain_ceiling": busy / (busy - saved) if busy > saved else None})
    return rows


_PANELS = (("mean_latency_s", "mean", True), ("p95_latency_s", "p95", True),
           ("p99_latency_s", "p99", True), ("max_latency_s", "max", False))


def plot(records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    summary = summarize(records)
    for name, points in by_setting(records).items():
        if points[0]["group"] == "sweep":
            continue
        figure, axes = plt.subplots(1, len(_PANELS), figsize=(20, 4.6), sharex=True)
        for label in dict.fromkeys(p["label"] for p in points):
            line = sorted((p for p in points if p["label"] == label),
                          key=lambda p: p["row"]["rate"])
            rates = [p["row"]["rate"] for p in line]
            for axis, (key, _, steady) in zip(axes, _PANELS, strict=True):
                values = [_steady(p, key) if steady else p["row"][key] for p in line]
                axis.plot(rates, [math.nan if v is None else v for v in values],
                          marker="o", label=label)
        target = (summary[name]["at_target"] or {}).get(
            "target_mean_latency_s")
        if target is not None:
            axes[0].axhline(target, color="grey", linestyle="--", linewidth=1,
                            label=f"target {target:.0f} s")
        for axis, (_, title, steady) in zip(axes, _PANELS, strict=True):
            window = "steady window" if steady else "all programs"
            axis.set_title(f"{title} latency ({window})")
            axis.set_xlabel("arrival rate (programs/s)")
            axis.set_ylabel("program latency (s)")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        engines = points[0]["row"]["engines"]
        regime = points[0].get("engine", "h100")
        figure.suptitle(f"{points[0]['row']['workload']}: simulated H100 (Llama 3 8B, "
                        f"{ENGINES[regime].kv_capacity_tokens // 1000}k tokens of KV) "
                        f"x {engines}, {points[0]['row']['programs']} programs per point")
        figure.tight_layout()
        path = out / f"latency_{name.replace('/', '_').replace('@', '_')}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def sweep_table(records: Sequence[dict[str, Any]]) -> str:
    """The sweep as a Markdown table, best mean first per (workload, rate)."""
    lines = []
    sweep = [r for r in records if r["group"] == "sweep"]
    def setting(record: dict[str, Any]) -> tuple[str, float, int]:
        return record["row"]["workload"], record["row"]["rate"], record["row"]["programs"]

    for key in sorted({setting(r) for r in sweep}):
        points = sorted((r for r in sweep if setting(r) == key),
                        key=lambda r: _steady(r, "mean_latency_s") or math.inf)
        lines += [f"### {key[0]} at {key[1]:g} programs/s, {key[2]} programs "
                  "(steady window)", "",
                  "| variant | mean s | p95 s | p99 s | max s (all) | tokens/s | "
                  "taskloom preemptions | engine preemptions | promotions |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in points:
            lines.append(
                f"| {r['label']} | {_steady(r, 'mean_latency_s'):.1f} | "
                f"{_steady(r, 'p95_latency_s'):.1f} | {_steady(r, 'p99_latency_s'):.1f} | "
                f"{r['row']['max_latency_s']:.1f} | {r['row']['throughput_tokens_per_s']:.0f} | "
                f"{r['scheduler']['preemptions']} | {r['row']['preemptions']} | "
                f"{r['scheduler']['promotions']} |")
        lines.append("")
    return "\n".join(lines)


def write_report(out: Path) -> dict[str, Any]:
    records = json.loads((out / "points.json").read_text())
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for path in plot(records, out):
        print(f"wrote {path}")
    if any(r["group"] == "sweep" for r in records):
        (out / "sweep.md").write_text(sweep_table(records))
        print(f"wrote {out / 'sweep.md'}")
    print(f"wrote {out / 'summary.json'}")
    return summary


# ------------------------------------------------------------------ commands


def policy_specs(args: argparse.Namespace) -> list[PointSpec]:
    specs = []
    for workload in args.workloads:
        programs = args.programs or DEFAULT_PROGRAMS[workload]
        rates = args.rates or DEFAULT_RATES[workload]
        # Rate by rate, so that a run cut short still has the policies side by side.
        for rate in rates:
            for name in args.policies:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       seed=args.seed, engine=args.engine))
    return specs


def balance_specs(args: argparse.Namespace) -> list[PointSpec]:
    """Four engines: program-aware balancing against round-robin, with the same policy,
    plus plain fcfs over round-robin (vLLM behind a plain load balancer)."""
    specs = []
    for workload in args.workloads:
        programs = args.programs or args.engines * DEFAULT_PROGRAMS[workload]
        rates = args.rates or tuple(args.engines * r for r in DEFAULT_RATES[workload])
        for rate in rates:
            for name in args.policies:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       engines=args.engines, seed=args.seed, group="balance",
                                       engine=args.engine))
    return specs


SWEEP_BOUNDARIES: tuple[tuple[float, ...], ...] = (
    (1.0, 4.0, 16.0),
    (4.0, 16.0, 64.0),
    (8.0, 32.0),
    (2.0, 4.0, 8.0, 16.0, 32.0),
)
SWEEP_BETAS = (2.0, 8.0, 32.0, math.inf)
SWEEP_CAPS = (64, 128, 256, 512, 1024)
SWEEP_FACTORS = ("caps", "levels", "beta")


def sweep_specs(args: argparse.Namespace) -> list[PointSpec]:
    """One factor at a time (the in-flight cap; levels and boundaries; beta) for the last
    policy given, next to the vLLM default. Levels and beta are swept at `--cap`."""
    workload = args.workloads[0]
    programs = args.programs or DEFAULT_PROGRAMS[workload]
    policy, cap = args.policies[-1], args.cap
    variants = [vllm_default()]
    if "caps" in args.factors:
        variants += [Variant(f"{policy} cap={c}", policy, max_in_flight=c) for c in SWEEP_CAPS]
    if "levels" in args.factors:
        variants += [
            Variant(f"{policy} cap={cap} K={len(b) + 1} {'/'.join(f'{x:g}' for x in b)}s",
                    policy, max_in_flight=cap, boundaries_s=b)
            for b in SWEEP_BOUNDARIES
        ]
    if "beta" in args.factors:
        variants += [Variant(f"{policy} cap={cap} beta={beta:g}", policy, max_in_flight=cap,
                             beta=beta) for beta in SWEEP_BETAS]
    # The first label of each setting: the default levels or beta, named again by the
    # other factors, are the same point.
    unique = list({v.setting: v for v in reversed(variants)}.values())[::-1]
    return [
        PointSpec(workload, programs, rate, variant, group="sweep", seed=args.seed,
                  engine=args.engine)
        for rate in args.rates or (DEFAULT_RATES[workload][-1],)
        for variant in unique
    ]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "balance", "sweep", "report"))
    parser.add_argument("out_dir", nargs="?", type=Path)
    parser.add_argument("--out", type=Path, default=Path("results/autellix"))
    parser.add_argument("--workloads", type=_names, default=WORKLOADS)
    parser.add_argument("--policies", type=_names, default=None)
    parser.add_argument("--rates", type=_floats, default=None)
    parser.add_argument("--programs", type=int, default=None)
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--engine", choices=tuple(ENGINES), default="h100",
                        help="simulated engine regime: h100 is vLLM's defaults for Llama 3 "
                             "8B on one H100; h100-kv16k the same with a 16k-token KV cache")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cap", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                        help="sweep: the in-flight cap for the levels and beta factors")
    parser.add_argument("--factors", type=_names, default=SWEEP_FACTORS,
                        help=f"sweep: which of {', '.join(SWEEP_FACTORS)}")
    args = parser.parse_args(argv)
    if args.out_dir is not None:
        args.out = args.out_dir
    if args.policies is None:
        args.policies = {"run": POLICIES, "balance": ("fcfs", "plas-rr", "plas"),
                         "sweep": ("plas",), "report": POLICIES}[args.command]
    return args


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(value) for value in _names(text))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command != "report":
        build = {"run": policy_specs, "balance": balance_specs, "sweep": sweep_specs}
        run_all(build[args.command](args), args.jobs, args.out)
    summary = write_report(args.out)
    for name, workload in summary.items():
        for pair, rows in workload["throughput_at_equal_mean_latency"].items():
            cells = ", ".join(
                f"{r['ratio']:.2f}{'+' if r['lower_bound'] else ''}x@{r['mean_latency_s']:.0f}s"
                for r in rows
            )
            print(f"{name:22} {pair:22} {cells}")
        target = workload["at_target"]
        if target is not None:
            cells = ", ".join(
                f"{pair} {r['ratio']:.2f}{'+' if r['lower_bound'] else ''}"
                f"{'-' if r['upper_bound'] else ''}x"
                for pair, r in target["ratios"].items() if pair.endswith(("/fcfs", "/mlfq"))
                or "-rr" in pair
            )
            print(f"{name:22} at {target['target_mean_latency_s']:.1f} s: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
