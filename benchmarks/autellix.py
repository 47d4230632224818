"""Program-aware scheduling (Autellix) on the simulated H100: policies side by side.

Every point is one (workload, scheduler variant, arrival rate) run of the benchmark
runner on fresh simulated engines (Llama 3 8B on an H100, `H100_LLAMA3_8B`), on virtual
time, so a seed fixes the programs and the arrivals. Points run in parallel processes
(`--jobs`).

    # policies side by side, one engine, four workloads, light to saturated rates
    .venv/bin/python benchmarks/autellix.py run --out results/autellix
    # the load balancer: four engines, locality against round-robin and least-loaded
    .venv/bin/python benchmarks/autellix.py balance --out results/autellix
    # pick levels, boundaries, beta and the in-flight cap
    .venv/bin/python benchmarks/autellix.py sweep --out results/autellix
    # the regime map: memory-bound?, ceiling, each policy and the no-regret check per
    # (workload, engine) cell, into regime.md / regime.json
    .venv/bin/python benchmarks/autellix.py regime --out results/autellix
    # tables and plots again from the JSON files
    .venv/bin/python benchmarks/autellix.py report results/autellix

    # the same on an engine whose KV cache (16k tokens) binds: a labelled regime
    .venv/bin/python benchmarks/autellix.py run --engine h100-kv16k --workloads mixed
    # long-context coding-agent sessions (~128K), where the default H100's KV binds
    .venv/bin/python benchmarks/autellix.py run --workloads coding-agent \
        --policies fcfs,plas,atlas,sjf-oracle --rates 0.01,0.02,0.03

Outputs: `points.json` (every point: the runner's row plus the scheduler's counters,
per-kind latencies, the engines' peak concurrency, busy and prefill seconds),
`summary.json` (throughput at equal mean latency, p95/p99, max latency, balancer gain,
and two ceilings read off the engines: the most programs/s any point's token throughput
allows, against fcfs's rate at the target, and the share of round-robin's engine time
that locality could save), `latency_<group>_<workload>[_<engine>].png` and `sweep.md`.
Latency figures cover the middle 80% of each point's programs by arrival
(`WARMUP_FRACTION`, in `taskloom/bench/autellix/points.py`); the max covers every
program. The headline ratio is read at one stated target (`TARGET_RULE`, in
`analysis.py`: twice fcfs's mean at its lowest measured rate).

The code lives in `taskloom/bench/autellix/`; this script is its command line.

The baseline `fcfs` is what vLLM does by default: arrival order, every call handed to
the engine at once (the cap is the engine's `max_num_seqs`), the engine's own queue in
arrival order. The program-aware variants hold calls in taskloom's queue beyond the cap,
preempt by abort and resume, and pass their level to the engine as its priority.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from taskloom.bench.autellix.points import ENGINES
from taskloom.bench.autellix.regime import REGIME_CELLS, REGIME_POLICIES, run_regime
from taskloom.bench.autellix.report import write_report
from taskloom.bench.autellix.specs import (
    POLICIES,
    SWEEP_CAPS,
    SWEEP_FACTORS,
    WORKLOADS,
    balance_specs,
    policy_specs,
    sweep_specs,
)
from taskloom.bench.autellix.store import run_all
from taskloom.orchestrator.scheduler.program_aware import DEFAULT_MAX_IN_FLIGHT


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=("run", "balance", "sweep", "report", "regime"))
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
                             "8B on one H100; h100-kv16k the same with a 16k-token KV cache; "
                             "h100-seqs256 with max_num_seqs 256")
    parser.add_argument("--mixed-coding-agent", action="store_true",
                        help="mixed gets coding-agent sessions as a fourth kind; its points "
                             "are labelled mixed+coding-agent (off: mixed as before)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--report-only", action="store_true",
                        help="regime: write the map from the cells already measured in full")
    parser.add_argument("--cap", type=int, default=DEFAULT_MAX_IN_FLIGHT,
                        help="sweep: the in-flight cap for the levels and beta factors")
    parser.add_argument("--caps", type=_ints, default=SWEEP_CAPS,
                        help="sweep: the in-flight caps of the caps factor")
    parser.add_argument("--factors", type=_names, default=SWEEP_FACTORS,
                        help=f"sweep: which of {', '.join(SWEEP_FACTORS)}")
    args = parser.parse_args(argv)
    if args.out_dir is not None:
        args.out = args.out_dir
    if args.policies is None:
        args.policies = {"run": POLICIES,
                         "balance": ("fcfs", "plas-rr", "plas-ll", "plas-loc", "plas"),
                         "sweep": ("plas",), "report": POLICIES,
                         "regime": REGIME_POLICIES}[args.command]
    return args


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(value) for value in _names(text))


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(value) for value in _names(text))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(sys.argv[1:] if argv is None else argv)
    if args.command == "regime":
        print(run_regime(args.out, REGIME_CELLS, args.jobs, args.seed,
                         run=not args.report_only), end="")
        return 0
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
                or "-rr" in pair or "-ll" in pair
            )
            print(f"{name:22} at {target['target_mean_latency_s']:.1f} s: {cells}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
