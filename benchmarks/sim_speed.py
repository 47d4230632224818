"""How fast does the simulator run? Simulated engine-seconds per wall-second.

Runs the mixed workload (chat, tool-use and tree-search programs interleaved; 1,000
programs by default) through the whole stack (runtime, executor, scheduler) on the
simulated H100 engine on trio's virtual clock, and reports:

- `virtual_s`: simulated time from the first arrival to the last finish;
- `engine_busy_s`: simulated seconds the engine spent computing steps;
- both divided by the wall-clock seconds the run took, and the wall time per LLM call
  and per generated token;
- `workload_build_s`: the wall time to build the programs from the data sets, apart.

The engine streams only each answer's first and last token (`--stream-interval`; the
fcfs policy reads nothing in between, so every simulated number is the same as with a
chunk per token), which also lets it sleep over runs of decode-only steps.
`--stream-interval 1 --step-by-step` is the slow path, for comparison.

    .venv/bin/python benchmarks/sim_speed.py -o results/sim_speed.json
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path
from typing import Any

import anyio

from taskloom.bench.metrics import BenchRow, ProgramOutcome
from taskloom.bench.runner import BenchConfig, SimEngines, SimSetup, run_on_virtual_time, run_point
from taskloom.bench.workloads import Workload, build_workload

FIRST_AND_LAST = 1 << 30
"""A stream interval longer than any answer: a chunk for the first token and the last."""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=Path("results/sim_speed.json"))
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="programs per second")
    parser.add_argument("--policy", default="fcfs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream-interval", type=int, default=FIRST_AND_LAST,
                        help="tokens per streamed chunk (default: only the first and last)")
    parser.add_argument("--step-by-step", action="store_true",
                        help="never sleep over several engine steps at once")
    return parser.parse_args()


async def simulate(config: BenchConfig, workload: Workload, policy: str, rate: float,
                   setup: SimSetup) -> tuple[BenchRow, float]:
    start = anyio.current_time()
    point = await run_point(config, workload, policy, rate, SimEngines(setup), _progress())
    return point.row, anyio.current_time() - start


def _progress() -> Any:
    count = 0
    started = time.perf_counter()

    def done(outcome: ProgramOutcome) -> None:
        nonlocal count
        count += 1
        if count % 100 == 0:
            print(f"  {count} programs done, {time.perf_counter() - started:.0f} s wall",
                  flush=True)

    return done


def main() -> None:
    args = parse_args()
    config = BenchConfig(workload="mixed", policies=(args.policy,), rates=(args.rate,),
                         programs=args.programs, seed=args.seed)
    built = time.perf_counter()
    workload = build_workload("mixed", args.programs, args.seed)
    build_s = time.perf_counter() - built
    print(f"{len(workload.programs)} programs, {workload.llm_calls} LLM calls "
          f"(built in {build_s:.1f} s)", flush=True)
    setup = SimSetup(stream_interval=args.stream_interval, fast_forward=not args.step_by_step)
    started, cpu_started = time.perf_counter(), time.process_time()
    row, virtual_s = run_on_virtual_time(simulate, config, workload, args.policy, args.rate,
                                         setup)
    wall_s = time.perf_counter() - started
    # On a shared machine the wall time includes waiting for a core; CPU time does not.
    cpu_s = time.process_time() - cpu_started
    busy_s = (row.busy_fraction or 0.0) * virtual_s
    result = {
        "benchmark": "sim_speed",
        "workload": "mixed",
        "programs": args.programs,
        "rate": args.rate,
        "policy": args.policy,
        "seed": args.seed,
        "stream_interval": args.stream_interval,
        "fast_forward": not args.step_by_step,
        "llm_calls": row.llm_calls,
        "generated_tokens": row.generated_tokens,
        "workload_build_s": build_s,
        "wall_s": wall_s,
        "cpu_s": cpu_s,
        "virtual_s": virtual_s,
        "engine_busy_s": busy_s,
        "virtual_s_per_wall_s": virtual_s / wall_s,
        "engine_busy_s_per_wall_s": busy_s / wall_s,
        "wall_us_per_llm_call": 1e6 * wall_s / max(1, row.llm_calls),
        "wall_us_per_generated_token": 1e6 * wall_s / max(1, row.generated_tokens),
        "row": row.to_json(),
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{virtual_s:.0f} simulated s ({busy_s:.0f} engine-busy s) in {wall_s:.1f} wall s "
          f"({cpu_s:.1f} CPU s): "
          f"{virtual_s / wall_s:.1f} simulated s per wall s, "
          f"{busy_s / wall_s:.1f} engine-busy s per wall s; wrote {args.output}")


if __name__ == "__main__":
    main()
