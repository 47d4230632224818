"""Does the simulator agree with a real engine? Sim versus the embedded vLLM engine.

1. Start the embedded engine (SmolLM2-135M on vLLM's CPU build) and calibrate the
   simulator's step cost on it (`taskloom.bench.calibrate`), unless `--calibration`
   gives a file from `taskloom bench calibrate`.
2. Run a small chat workload on it: ShareGPT conversations with Poisson arrivals, fcfs.
   Trace lengths are capped (`--max-output-tokens`, `--max-context-tokens`) so that two
   CPU cores finish in a few minutes.
3. Run the same programs, arrivals and seed on the simulator with the calibrated cost
   and the engine's own limits. A real model may stop before `max_tokens`, so the sim
   replays the answer lengths the real run recorded; prompt lengths are the simulator's
   own approximate count.
4. Compare mean and p95 program latency; they agree when each is within 25%.

The engine shares the machine's cores with whatever else runs there; the JSON records
the load average before and after, and `--recalibrate-after` times the engine again
after the real run, to show how much its speed drifted while it ran.

    .venv/bin/python benchmarks/sim_fidelity.py -o results/sim_fidelity.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend
from taskloom.backends.factory import backend_name, open_backend
from taskloom.bench.calibrate import (
    Calibration,
    CalibrationPlan,
    calibrate,
    load_calibration,
    save_calibration,
)
from taskloom.bench.metrics import BenchRow, ProgramOutcome
from taskloom.bench.replay import RecordedLengths, RecordingBackend
from taskloom.bench.runner import (
    BenchConfig,
    PointRun,
    SharedEngines,
    SimEngines,
    SimSetup,
    run_on_virtual_time,
    run_point,
)
from taskloom.bench.workloads import Workload, WorkloadOptions, build_workload

TOLERANCE = 0.25
POLICY = "fcfs"
# Prefill and decode steps sized like this workload's; a smaller plan than the CLI's
# default so the whole benchmark stays within a few minutes on two cores.
PLAN = CalibrationPlan(
    prefill_lengths=(64, 256, 512),
    batch_sizes=(1, 2, 4, 8, 16),
    decode_prompt_lengths=(32, 256),
    decode_tokens=16,
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/sim_fidelity.json"))
    parser.add_argument("--programs", type=int, default=30)
    parser.add_argument("--rate", type=float, default=0.25, help="programs per second")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-output-tokens", type=int, default=32)
    parser.add_argument("--max-context-tokens", type=int, default=512)
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--calibration", type=Path, default=None,
                        help="use this calibration instead of measuring one")
    parser.add_argument("--recalibrate-after", action="store_true",
                        help="calibrate again after the real run and report that sim too")
    return parser.parse_args()


def bench_config(args: argparse.Namespace, backend: str) -> BenchConfig:
    options = WorkloadOptions(max_context_tokens=args.max_context_tokens,
                              max_output_tokens=args.max_output_tokens)
    return BenchConfig(workload="chat", policies=(POLICY,), rates=(args.rate,),
                       programs=args.programs, seed=args.seed,
                       backend=backend_name(backend), options=options)


@dataclass
class RealRun:
    row: BenchRow
    calibration: Calibration
    wall_s: float
    calibration_after: Calibration | None = None


async def run_real(
    args: argparse.Namespace, workload: Workload, lengths: RecordedLengths
) -> RealRun:
    async with open_backend("vllm", max_num_seqs=args.max_num_seqs,
                            max_model_len=2048) as engine:
        calibration = await _calibration(args, engine)
        recording = RecordingBackend(engine, lengths)
        started = time.perf_counter()
        point = await run_point(bench_config(args, "vllm"), workload, POLICY, args.rate,
                                SharedEngines([recording]), _progress("real"))
        row = point.row
        run = RealRun(row, calibration, time.perf_counter() - started)
        if args.recalibrate_after:
            print("calibrating again after the run…", flush=True)
            run.calibration_after = await calibrate(engine, PLAN, model=calibration.model)
        return run


async def _calibration(args: argparse.Namespace, engine: Backend) -> Calibration:
    if args.calibration is not None:
        return load_calibration(args.calibration)
    print("calibrating the simulator on the engine…", flush=True)
    calibration = await calibrate(engine, PLAN, model="embedded SmolLM2-135M-Instruct")
    save_calibration(calibration, args.output.with_name(args.output.stem + "_calibration.json"))
    return calibration


def run_sim(args: argparse.Namespace, workload: Workload, calibration: Calibration,
            lengths: RecordedLengths) -> BenchRow:
    setup = SimSetup(engine=calibration.engine, cost=calibration.cost,
                     output_tokens=lengths.output_tokens)
    point: PointRun = run_on_virtual_time(run_point, bench_config(args, "sim"), workload,
                                          POLICY, args.rate, SimEngines(setup),
                                          _progress("sim"))
    return point.row


def _progress(label: str) -> Any:
    count = 0

    def done(outcome: ProgramOutcome) -> None:
        nonlocal count
        count += 1
        status = "ok" if outcome.succeeded else f"FAILED: {outcome.error}"
        print(f"  [{label}] {count:3d} program {outcome.index:3d} "
              f"{outcome.latency_s:7.2f} s  {status}", flush=True)

    return done


def agreement(real: BenchRow, sim: BenchRow) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for metric in ("mean_latency_s", "p95_latency_s"):
        real_value, sim_value = getattr(real, metric), getattr(sim, metric)
        error = abs(sim_value - real_value) / real_value
        report[metric] = {"real": real_value, "sim": sim_value, "relative_error": error,
                          "within_tolerance": error <= TOLERANCE}
    report["agree"] = all(v["within_tolerance"] for v in report.values())
    return report


def main() -> None:
    args = parse_args()
    load_before = os.getloadavg()
    workload = build_workload("chat", args.programs, args.seed,
                              WorkloadOptions(max_context_tokens=args.max_context_tokens,
                                              max_output_tokens=args.max_output_tokens))
    lengths = RecordedLengths()
    print(f"{len(workload.programs)} chat programs, {workload.llm_calls} LLM calls", flush=True)
    real_run: RealRun = anyio.run(run_real, args, workload, lengths, backend="asyncio")
    load_after = os.getloadavg()
    real, calibration = real_run.row, real_run.calibration
    sim = run_sim(args, workload, calibration, lengths)
    result = {
        "benchmark": "sim_fidelity",
        "workload": "chat",
        "programs": args.programs,
        "rate": args.rate,
        "seed": args.seed,
        "policy": POLICY,
        "max_output_tokens": args.max_output_tokens,
        "max_context_tokens": args.max_context_tokens,
        "tolerance": TOLERANCE,
        "comparison": agreement(real, sim),
        "real": real.to_json(),
        "sim": sim.to_json(),
        "real_wall_s": real_run.wall_s,
        "real_recorded_prompt_tokens": lengths.prompt_tokens,
        "calibration": calibration.to_json(),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average_before": load_before, "load_average_after": load_after},
    }
    if real_run.calibration_after is not None:
        after = run_sim(args, workload, real_run.calibration_after, lengths)
        result["calibration_after"] = real_run.calibration_after.to_json()
        result["comparison_with_calibration_after"] = agreement(real, after)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    comparison = result["comparison"]
    for metric in ("mean_latency_s", "p95_latency_s"):
        item = comparison[metric]
        print(f"{metric}: real {item['real']:.2f} s, sim {item['sim']:.2f} s "
              f"({item['relative_error']:.0%} apart)")
    print(f"agree within {TOLERANCE:.0%}: {comparison['agree']}; wrote {args.output}")


if __name__ == "__main__":
    main()
