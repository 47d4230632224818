"""How fast does the simulator run? Simulated engine-seconds per wall-second.

Runs the mixed workload (chat, tool-use and tree-search programs interleaved; 1,000
programs by default) through the whole stack (runtime, executor, scheduler) on the
simulated H100 engine on trio's virtual clock, and reports:

- `virtual_s`: simulated time from the first arrival to the last finish;
- `engine_busy_s`: simulated seconds the engine spent computing steps;
- both divided by the wall-clock seconds the run took, and the wall time per LLM call
  and per generated token;
- `workload_build_s`: the wall time to build the programs from the data sets, apart.

The engine streams as coarsely as the policy allows (`taskloom bench`'s default: for
fcfs only each answer's first and last token, see `runner.stream_interval_for`), which
also lets it sleep over runs of decode-only steps. `--stream-interval 1 --step-by-step`
is the slow path, for comparison.

`compare` runs each policy both ways on the same seed, side by side in this process
(slow path first, then the default), and reports every figure of both rows, their
relative differences, and the wall and CPU seconds of each; `--repeat` runs the default
a second time and says whether the row is identical.

`against` measures a speedup that has no switch: it runs `taskloom bench mixed` from
this tree and from another commit's (a `git archive` of `--commit` in a temporary
folder), each in a child process, the two alternating round by round, and reports the
CPU seconds (user + sys, `getrusage` of the child) and wall seconds of each, the load
average around each run, and whether the two `results.json` files agree field by field.

`step` times the engine alone: `--running` requests of 200 prompt tokens, prefilled, then
1,000 steps in which each decodes a token (no preemption: the KV cache holds them); it
prints the CPU time per request per step
(run it with PYTHONPATH at another tree to time that tree's engine).

    .venv/bin/python benchmarks/sim_speed.py -o results/sim_speed.json
    .venv/bin/python benchmarks/sim_speed.py compare --programs 100 --rate 4 \
        --policies fcfs,sjf-oracle,plas,atlas,mlfq -o results/sim_fast_path.json
    .venv/bin/python benchmarks/sim_speed.py against --commit a55de73 --programs 300 \
        --rate 4 --policies fcfs,plas --rounds 2 -o results/sim_speed_against.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.sim import H100_LLAMA3_8B, H100_LLAMA3_8B_ENGINE, SimEngine
from taskloom.bench.metrics import BenchRow, ProgramOutcome
from taskloom.bench.runner import (
    BenchConfig,
    SimEngines,
    SimSetup,
    run_benchmark,
    run_on_virtual_time,
    run_point,
)
from taskloom.bench.workloads import Workload, build_workload

COMPARED = ("mean_latency_s", "p50_latency_s", "p95_latency_s", "p99_latency_s",
            "max_latency_s", "mean_token_latency_s", "throughput_programs_per_s",
            "throughput_tokens_per_s", "generated_tokens", "prompt_tokens",
            "cached_prompt_tokens", "llm_calls", "preemptions", "busy_fraction",
            "makespan_s", "engine_steps")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", nargs="?", choices=("speed", "compare", "against", "step"),
                        default="speed")
    parser.add_argument("-o", "--output", type=Path, default=None,
                        help="default results/sim_speed.json (compare: sim_fast_path.json, "
                        "against: sim_speed_against.json)")
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="programs per second")
    parser.add_argument("--policy", default="fcfs")
    parser.add_argument("--policies", default="fcfs,sjf-oracle,plas,atlas,mlfq",
                        help="compare: comma-separated")
    parser.add_argument("--repeat", action="store_true",
                        help="compare: run the default path twice, to check determinism")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stream-interval", type=int, default=None,
                        help="tokens per streamed chunk (default: the policy's coarsest)")
    parser.add_argument("--step-by-step", action="store_true",
                        help="never sleep over several engine steps at once")
    parser.add_argument("--commit", default=None,
                        help="against: the commit to measure this tree against")
    parser.add_argument("--rounds", type=int, default=1,
                        help="against: runs of each tree per policy, alternating")
    parser.add_argument("--running", type=int, default=256,
                        help="step: requests decoding at once")
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


def _timed_row(config: BenchConfig) -> tuple[dict[str, Any], float, float]:
    started, cpu_started = time.perf_counter(), time.process_time()
    row = run_benchmark(config)[0].to_json()
    return row, time.perf_counter() - started, time.process_time() - cpu_started


def _relative(slow: Any, fast: Any) -> float | None:
    if slow is None or fast is None:
        return None
    if slow == fast:
        return 0.0
    return (fast - slow) / abs(slow) if slow else None


def compare(args: argparse.Namespace) -> None:
    output = args.output or Path("results/sim_fast_path.json")
    points = []
    for policy in args.policies.split(","):
        config = BenchConfig(workload="mixed", policies=(policy,), rates=(args.rate,),
                             programs=args.programs, seed=args.seed)
        slow_config = replace(config, sim=SimSetup(stream_interval=1, fast_forward=False))
        slow, slow_wall, slow_cpu = _timed_row(slow_config)
        fast, fast_wall, fast_cpu = _timed_row(config)
        point: dict[str, Any] = {
            "policy": policy,
            "stream_interval": config.sim.for_policy(policy).stream_interval,
            "slow": {"wall_s": slow_wall, "cpu_s": slow_cpu, "row": slow},
            "default": {"wall_s": fast_wall, "cpu_s": fast_cpu, "row": fast},
            "relative_difference": {k: _relative(slow.get(k), fast.get(k)) for k in COMPARED},
        }
        if args.repeat:
            again, _, _ = _timed_row(config)
            point["repeat_identical"] = again == fast
        worst = max((abs(v) for v in point["relative_difference"].values() if v is not None),
                    default=0.0)
        point["largest_relative_difference"] = worst
        points.append(point)
        print(f"{policy}: slow {slow_wall:.1f} s wall / {slow_cpu:.1f} s CPU, default "
              f"{fast_wall:.1f} s / {fast_cpu:.1f} s; largest difference {100 * worst:.3f}%"
              + (f"; repeat identical: {point['repeat_identical']}" if args.repeat else ""),
              flush=True)
    result = {"benchmark": "sim_fast_path", "workload": "mixed", "programs": args.programs,
              "rate": args.rate, "seed": args.seed, "points": points, "machine": _machine()}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {output}")


def _machine() -> dict[str, str]:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        model = next((line.split(":", 1)[1].strip() for line in cpuinfo.read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"platform": platform.platform(), "processor": platform.processor(), "cpu": model,
            "cores": str(os.cpu_count())}


def against(args: argparse.Namespace) -> None:
    if args.commit is None:
        raise SystemExit("against needs --commit")
    output = args.output or Path("results/sim_speed_against.json")
    here = Path(__file__).resolve().parents[1]
    commit = _git(here, "rev-parse", args.commit)
    points = []
    with tempfile.TemporaryDirectory() as scratch:
        baseline = Path(scratch) / "baseline"
        baseline.mkdir()
        archive = subprocess.run(["git", "-C", str(here), "archive", commit],
                                 check=True, capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(baseline)], input=archive, check=True)
        trees = {"baseline": baseline, "current": here}
        for policy in args.policies.split(","):
            runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
            for round_index in range(args.rounds):
                # Alternate which tree goes first, so that a change in load hits both.
                order = ("baseline", "current") if round_index % 2 == 0 else (
                    "current", "baseline")
                for name in order:
                    out = Path(scratch) / f"{name}-{policy}-{round_index}"
                    run = _child_bench(trees[name], policy, args, out)
                    runs[name].append(run)
                    print(f"{policy} {name} round {round_index}: {run['cpu_s']:.1f} CPU s, "
                          f"{run['wall_s']:.1f} s wall, load {run['load_before'][0]:.1f}",
                          flush=True)
            rows = [run.pop("rows") for name in runs for run in runs[name]]
            differing = sorted({key for row in rows[1:] for key in _differing(rows[0], row)})
            best = {name: min(run["cpu_s"] for run in runs[name]) for name in runs}
            points.append({"policy": policy, "runs": runs, "rows": rows[0],
                           "identical": not differing, "differing_fields": differing,
                           "best_cpu_s": best,
                           "speedup_cpu": best["baseline"] / best["current"]})
            print(f"{policy}: best CPU {best['baseline']:.1f} -> {best['current']:.1f} s "
                  f"({best['baseline'] / best['current']:.2f}x); identical: {not differing}",
                  flush=True)
    result = {"benchmark": "sim_speed_against", "workload": "mixed", "programs": args.programs,
              "rate": args.rate, "seed": args.seed, "baseline_commit": commit,
              "current_commit": _git(here, "rev-parse", "HEAD"),
              "current_dirty": bool(_git(here, "status", "--porcelain", "--", "taskloom")),
              "points": points, "machine": _machine()}
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n")
    _plot_against(result, output.with_suffix(".png"))
    print(f"wrote {output} and {output.with_suffix('.png')}")


def _child_bench(tree: Path, policy: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """One `taskloom bench mixed` run from `tree` in a child process: its CPU and wall
    seconds, the load average before and after, and its rows."""
    command = [sys.executable, "-m", "taskloom", "bench", "mixed", "--policy", policy,
               "--programs", str(args.programs), "--rate", str(args.rate),
               "--seed", str(args.seed), "--no-progress", "-o", str(out)]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    load_before = os.getloadavg()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, cwd=tree, env=env, check=True, stdout=subprocess.DEVNULL)
    wall_s = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    rows = json.loads((out / "results.json").read_text())
    return {"cpu_s": cpu_s, "wall_s": wall_s, "load_before": list(load_before),
            "load_after": list(os.getloadavg()), "rows": rows}


def _differing(first: list[dict[str, Any]], other: list[dict[str, Any]]) -> list[str]:
    if len(first) != len(other):
        return ["<number of rows>"]
    return [key for a, b in zip(first, other, strict=True) for key in sorted({*a, *b})
            if a.get(key) != b.get(key)]


def _git(tree: Path, *arguments: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *arguments], check=True,
                          capture_output=True, text=True).stdout.strip()


def _plot_against(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    policies = [point["policy"] for point in result["points"]]
    for offset, name in ((-0.2, "baseline"), (0.2, "current")):
        axes.bar([i + offset for i in range(len(policies))],
                 [point["best_cpu_s"][name] for point in result["points"]], width=0.4,
                 label=f"{name} ({result[name + '_commit'][:7]})")
    axes.set_xticks(range(len(policies)), policies)
    axes.set_ylabel("CPU s (user + sys), best of rounds")
    axes.set_title(f"taskloom bench mixed, {result['programs']} programs at {result['rate']:g}/s")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def engine_step(args: argparse.Namespace) -> None:
    engine = SimEngine(H100_LLAMA3_8B_ENGINE, H100_LLAMA3_8B)
    for index in range(args.running):
        engine.submit([index * 7 + offset for offset in range(200)], 10_000)
    while any(not request.is_decoding for request in engine.running) or len(engine.waiting):
        engine.complete(engine.schedule())
    steps = 1000
    started = time.process_time()
    for _ in range(steps):
        engine.complete(engine.schedule())
    per_step = (time.process_time() - started) / steps
    if engine.stats().preemptions:
        raise SystemExit("the engine preempted: lower --running")
    print(f"{len(engine.running)} running: {1e6 * per_step:.0f} µs per step, "
          f"{1e6 * per_step / len(engine.running):.2f} µs per request per step")


def main() -> None:
    args = parse_args()
    if args.mode == "step":
        engine_step(args)
        return
    if args.mode == "compare":
        compare(args)
        return
    if args.mode == "against":
        against(args)
        return
    args.output = args.output or Path("results/sim_speed.json")
    config = BenchConfig(workload="mixed", policies=(args.policy,), rates=(args.rate,),
                         programs=args.programs, seed=args.seed)
    built = time.perf_counter()
    workload = build_workload("mixed", args.programs, args.seed)
    build_s = time.perf_counter() - built
    print(f"{len(workload.programs)} programs, {workload.llm_calls} LLM calls "
          f"(built in {build_s:.1f} s)", flush=True)
    setup = SimSetup(stream_interval=args.stream_interval,
                     fast_forward=not args.step_by_step).for_policy(args.policy)
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
        "stream_interval": setup.stream_interval,
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
        "machine": _machine(),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{virtual_s:.0f} simulated s ({busy_s:.0f} engine-busy s) in {wall_s:.1f} wall s "
          f"({cpu_s:.1f} CPU s): "
          f"{virtual_s / wall_s:.1f} simulated s per wall s, "
          f"{busy_s / wall_s:.1f} engine-busy s per wall s; wrote {args.output}")


if __name__ == "__main__":
    main()
