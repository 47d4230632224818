"""KV kept warm across tool calls: coding-agent sessions with and without the hint.

Each point runs the same coding-agent sessions (same seed: same programs, same Poisson
arrivals) on a fresh default simulated H100 twice, side by side in this process: once
as before, once with keep-warm hints (`BenchConfig.keep_warm`: an LLM call that a tool
call and another LLM call follow asks the engine to keep its KV pinned for the tool's
expected duration; see `taskloom.orchestrator.keep_warm`). It reports, for each policy
and rate, mean and p99 program latency (all programs, and the steady window that
`benchmarks/autellix.py` uses), engine preemptions, the prefix-hit rate, and the
engine's pin counters. Simulated only: vLLM has no API to pin KV.

    nice .venv/bin/python benchmarks/kv_warm.py --rates 0.05,0.055 --programs 40 \
        --policies fcfs,plas -o results/kv_warm/kv_warm.json
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from taskloom.bench.autellix.points import (
    STREAM_INTERVAL,
    RecordingSimEngines,
    latency_stats,
    steady_window,
)
from taskloom.bench.metrics import ProgramOutcome
from taskloom.bench.runner import BenchConfig, SimSetup, run_on_virtual_time, run_point
from taskloom.bench.workloads import WorkloadOptions, build_workload

WORKLOAD = "coding-agent"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rates", default="0.05,0.055",
                        help="programs/s, comma-separated")
    parser.add_argument("--programs", type=int, default=40)
    parser.add_argument("--policies", default="fcfs,plas")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("-o", "--out", type=Path, default=Path("results/kv_warm/kv_warm.json"))
    return parser.parse_args()


def run_pair_point(policy: str, rate: float, programs: int, seed: int,
                   keep_warm: bool) -> dict[str, Any]:
    workload = build_workload(WORKLOAD, programs, seed, WorkloadOptions())
    setup = SimSetup(stream_interval=STREAM_INTERVAL)
    config = BenchConfig(workload=WORKLOAD, policies=(policy,), rates=(rate,),
                         programs=programs, seed=seed, sim=setup, keep_warm=keep_warm)
    engines = RecordingSimEngines(setup)
    outcomes: list[ProgramOutcome] = []
    started = time.monotonic()
    point = run_on_virtual_time(run_point, config, workload, policy, rate, engines,
                                outcomes.append)
    row = point.row
    stats = engines.stats[0]
    return {
        "policy": policy,
        "rate": rate,
        "keep_warm": keep_warm,
        "programs": programs,
        "failed_programs": row.failed_programs,
        "mean_latency_s": row.mean_latency_s,
        "p99_latency_s": row.p99_latency_s,
        "steady": latency_stats(steady_window(outcomes)),
        "engine_preemptions": stats.preemptions,
        "prefix_hit_rate": stats.cached_prompt_tokens / max(
            1, stats.cached_prompt_tokens + stats.prefill_tokens),
        "engine": asdict(stats),
        "wall_s": time.monotonic() - started,
    }


def main() -> None:
    args = parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    policies = args.policies.split(",")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    points: list[dict[str, Any]] = []
    for rate in rates:
        for policy in policies:
            for keep_warm in (False, True):
                point = run_pair_point(policy, rate, args.programs, args.seed, keep_warm)
                points.append(point)
                print(f"{policy}@{rate:g} keep_warm={keep_warm}: "
                      f"mean {point['mean_latency_s']:.1f}s p99 {point['p99_latency_s']:.1f}s "
                      f"preemptions {point['engine_preemptions']} "
                      f"hit {point['prefix_hit_rate']:.3f} ({point['wall_s']:.0f}s wall)",
                      flush=True)
                args.out.write_text(json.dumps({"workload": WORKLOAD, "seed": args.seed,
                                                "points": points}, indent=1))
    plot(points, args.out.with_suffix(".png"))


def plot(points: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = sorted({(p["policy"], p["rate"]) for p in points}, key=lambda k: (k[1], k[0]))
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.4
    for axis, key in zip(axes, ("mean_latency_s", "p99_latency_s"), strict=True):
        for offset, keep_warm in ((-width / 2, False), (width / 2, True)):
            values = [next(p[key] for p in points if (p["policy"], p["rate"]) == label
                           and p["keep_warm"] == keep_warm) for label in labels]
            axis.bar([i + offset for i in range(len(labels))], values, width,
                     label="keep-warm" if keep_warm else "as before")
        axis.set_xticks(range(len(labels)), [f"{pol}@{rate:g}" for pol, rate in labels])
        axis.set_ylabel(key.replace("_", " "))
        axis.legend()
    figure.suptitle(f"{WORKLOAD} on the simulated H100: KV kept warm across tool calls")
    figure.tight_layout()
    figure.savefig(path, dpi=100)


if __name__ == "__main__":
    main()
