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

Outputs: `points.json` (every point: the runner's row plus the scheduler's counters and
per-kind latencies), `summary.json` (throughput at equal mean latency, p95/p99, max
latency, balancer gain), and `latency_<workload>.png`.

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
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from taskloom.backends.base import Backend, GenerateRequest
from taskloom.backends.sim import H100_LLAMA3_8B_ENGINE, QueuePolicy
from taskloom.bench.metrics import ProgramOutcome
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
POLICIES = ("fcfs", "mlfq", "plas", "atlas")
# Programs per point and rates (programs/s) from light to past saturation, per workload.
# A tree search is ~40x a chat in work, so it gets fewer programs and lower rates.
DEFAULT_PROGRAMS = {"chat": 120, "tool-use": 160, "tree-search": 40, "mixed": 120}
DEFAULT_RATES = {
    "chat": (1.0, 2.0, 4.0, 8.0),
    "tool-use": (2.0, 8.0, 16.0, 32.0),
    "tree-search": (0.25, 0.5, 1.0, 2.0),
    "mixed": (1.0, 2.0, 4.0, 8.0),
}


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
        bounds = "default" if self.boundaries_s is None else "-".join(map(str, self.boundaries_s))
        return (f"autellix:{self.label}:{self.policy}:{self.balancer}:{self.max_in_flight}:"
                f"{bounds}:{self.beta}:{self.engine_policy}")

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


_WORKLOADS: dict[tuple[str, int, int], Workload] = {}


def run_one(spec: PointSpec) -> dict[str, Any]:
    """Run one point in this process; return a JSON-ready record."""
    cache_key = (spec.workload, spec.programs, spec.seed)
    if cache_key not in _WORKLOADS:
        _WORKLOADS[cache_key] = build_workload(spec.workload, spec.programs, spec.seed)
    workload = _WORKLOADS[cache_key]
    register_variant(spec.variant, workload)
    setup = SimSetup(engine=replace(H100_LLAMA3_8B_ENGINE, policy=spec.variant.engine_policy))
    config = BenchConfig(workload=spec.workload, policies=(spec.variant.key,),
                         rates=(spec.rate,), programs=spec.programs, seed=spec.seed, sim=setup,
                         engines=spec.engines)
    outcomes: list[ProgramOutcome] = []
    started = time.monotonic()
    row = run_on_virtual_time(run_point, config, workload, spec.variant.key, spec.rate,
                              SimEngines(setup, spec.engines), outcomes.append)
    stats = _LAST_SCHEDULER[0].stats()
    return {
        "group": spec.group,
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
        "by_kind": _by_kind(outcomes),
        "wall_s": time.monotonic() - started,
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
           f"{spec.seed}|{spec.variant.key}"


def _record_id(record: dict[str, Any]) -> str:
    row, variant = record["row"], Variant(**_variant_fields(record["variant"]))
    return f"{record['group']}|{row['workload']}|{row['programs']}|{row['rate']}|" \
           f"{row['engines']}|{row['seed']}|{variant.key}"


def _variant_fields(data: dict[str, Any]) -> dict[str, Any]:
    fields = dict(data)
    if fields.get("boundaries_s") is not None:
        fields["boundaries_s"] = tuple(fields["boundaries_s"])
    return fields


def _print_record(record: dict[str, Any]) -> None:
    row, sched = record["row"], record["scheduler"]
    print(
        f"[{record['group']}] {row['workload']:11} {record['label']:12} rate={row['rate']:<5g} "
        f"mean={_fmt(row['mean_latency_s'])} p95={_fmt(row['p95_latency_s'])} "
        f"p99={_fmt(row['p99_latency_s'])} max={_fmt(row['max_latency_s'])} "
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
    for rate, latency in sorted(curves[baseline]):
        other, exact = rate_at_latency(curves[policy], latency)
        rows.append({"baseline_rate": rate, "mean_latency_s": latency, "rate": other,
                     "ratio": other / rate if rate else math.nan,
                     "lower_bound": not exact})
    return rows


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for group in sorted({r["group"] for r in records}):
        mine = [r for r in records if r["group"] == group]
        for workload in sorted({r["row"]["workload"] for r in mine}):
            points = [r for r in mine if r["row"]["workload"] == workload]
            summary[f"{group}/{workload}"] = _summarize_workload(points)
    return summary


def _summarize_workload(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    curves: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        latency = point["row"]["mean_latency_s"]
        if latency is not None:
            curves.setdefault(point["label"], []).append((point["row"]["rate"], latency))
    table = {
        point["label"] + f"@{point['row']['rate']:g}": {
            key: point["row"][key]
            for key in ("mean_latency_s", "p95_latency_s", "p99_latency_s", "max_latency_s",
                        "throughput_programs_per_s", "failed_programs")
        } | {"preemptions": point["scheduler"]["preemptions"],
             "prefix_cache_hit_rate": point["scheduler"]["prefix_cache_hit_rate"],
             "by_kind": point["by_kind"]}
        for point in sorted(points, key=lambda p: (p["label"], p["row"]["rate"]))
    }
    ratios = {
        f"{policy}/{baseline}": throughput_at_equal_latency(curves, baseline, policy)
        for baseline in ("fcfs", "mlfq", "plas-rr", "atlas-rr")
        if baseline in curves
        for policy in curves
        if policy != baseline and policy in ("atlas", "plas", "sjf-oracle", "mlfq")
    }
    return {"points": table, "throughput_at_equal_mean_latency": ratios}


def plot(records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for group in sorted({r["group"] for r in records}):
        mine = [r for r in records if r["group"] == group]
        for workload in sorted({r["row"]["workload"] for r in mine}):
            points = [r for r in mine if r["row"]["workload"] == workload]
            figure, axes = plt.subplots(1, 3, figsize=(15, 4.2), sharex=True)
            for label in dict.fromkeys(p["label"] for p in points):
                line = sorted((p["row"] for p in points if p["label"] == label),
                              key=lambda row: row["rate"])
                rates = [row["rate"] for row in line]
                for axis, key in zip(axes, ("mean_latency_s", "p95_latency_s",
                                            "max_latency_s"), strict=True):
                    values = [math.nan if row[key] is None else row[key] for row in line]
                    axis.plot(rates, values, marker="o", label=label)
            for axis, title in zip(axes, ("mean", "p95", "max"), strict=True):
                axis.set_title(f"{title} program latency")
                axis.set_xlabel("arrival rate (programs/s)")
                axis.set_ylabel("seconds")
                axis.grid(alpha=0.3)
                axis.legend()
            engines = points[0]["row"]["engines"]
            figure.suptitle(f"{workload}: simulated H100 (Llama 3 8B) x {engines}, "
                            f"{points[0]['row']['programs']} programs per point")
            figure.tight_layout()
            path = out / f"latency_{group}_{workload}.png"
            figure.savefig(path, dpi=110)
            plt.close(figure)
            paths.append(path)
    return paths


def write_report(out: Path) -> dict[str, Any]:
    records = json.loads((out / "points.json").read_text())
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for path in plot(records, out):
        print(f"wrote {path}")
    print(f"wrote {out / 'summary.json'}")
    return summary


# ------------------------------------------------------------------ commands


def policy_specs(args: argparse.Namespace) -> list[PointSpec]:
    specs = []
    for workload in args.workloads:
        programs = args.programs or DEFAULT_PROGRAMS[workload]
        rates = args.rates or DEFAULT_RATES[workload]
        for name in args.policies:
            for rate in rates:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       seed=args.seed))
    return specs


def balance_specs(args: argparse.Namespace) -> list[PointSpec]:
    """Four engines: program-aware balancing against round-robin, with the same policy,
    plus plain fcfs over round-robin (vLLM behind a plain load balancer)."""
    specs = []
    for workload in args.workloads:
        programs = args.programs or args.engines * DEFAULT_PROGRAMS[workload]
        rates = args.rates or tuple(args.engines * r for r in DEFAULT_RATES[workload])
        for name in args.policies:
            for rate in rates:
                specs.append(PointSpec(workload, programs, rate, standard_variant(name),
                                       engines=args.engines, seed=args.seed, group="balance"))
    return specs


SWEEP_BOUNDARIES: tuple[tuple[float, ...], ...] = (
    (1.0, 4.0, 16.0),
    (4.0, 16.0, 64.0),
    (8.0, 32.0),
    (2.0, 4.0, 8.0, 16.0, 32.0),
)
SWEEP_BETAS = (2.0, 8.0, 32.0, math.inf)
SWEEP_CAPS = (32, 64, 128, 256)
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
    unique = list({variant.key: variant for variant in variants}.values())
    return [
        PointSpec(workload, programs, rate, variant, group="sweep", seed=args.seed)
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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
