"""Certainty-based early stopping: batch replay, online serving, CoT probing.

    .venv/bin/python benchmarks/early_stop.py batch    # ~1 min: recorded + synthetic replay
    .venv/bin/python benchmarks/early_stop.py online   # ~30 min: simulated H100, rate sweeps
    .venv/bin/python benchmarks/early_stop.py probe    # ~3 min: probing on the embedded engine
    .venv/bin/python benchmarks/early_stop.py all

Results go to results/early_stop/ (JSON + PNG); `-o` picks another folder.

1. Batch (goal: >= 50% of generated tokens saved for <= 1 point of accuracy lost).
   Recorded samples of the embedded model (benchmarks/data/arith_samples.jsonl, from
   benchmarks/record_samples.py) and a synthetic set, replayed under certaindex, Beta,
   Dirichlet (and certaindex with the hopeless cut) over a range of thresholds.
2. Online (goal: >= 3.3x higher query rate at a latency target, >= 4.7x tighter target
   at a fixed rate). See benchmarks/early_stop_online.py: targets are met when 90% of
   queries are within their deadline, one deadline for all (absolute) or Dynasor's
   difficulty-aware deadlines; the fixed rate is the highest the baseline sustains
   within the absolute target.
3. Probing: specs/long_reasoning.yaml on the embedded engine with and without probing.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).parent))  # the sibling modules of this script

import early_stop_batch
import early_stop_online

SLO_S = 15.0  # the latency target of the online part: ~3x the baseline's p90 at 0.5 q/s


def _write(folder: Path, name: str, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(data, indent=1) + "\n")


def batch(folder: Path) -> None:
    started = time.monotonic()
    report = early_stop_batch.run_batch()
    report["wall_s"] = round(time.monotonic() - started, 1)
    _write(folder, "batch.json", report)
    early_stop_batch.plot_batch(report, folder / "batch.png")
    for name in ("recorded", "synthetic"):
        base = report[name]["baseline_all_samples"]
        print(f"{name}: {report[name]['questions']} questions, all 64 samples: accuracy "
              f"{base['accuracy']:.3f}, {base['tokens']} generated tokens")
        for width, best in report[name]["best_within_1_point"].items():
            print(f"  {width} in flight: best within 1 point: {best['rule']} {best['setting']}"
                  f": {100 * best['tokens_saved']:.1f}% tokens saved, "
                  f"{best['accuracy_change_points']:+.1f} points")


def online(folder: Path, queries: int, samples: int, max_rate: float | None) -> None:
    workload = early_stop_online.online_queries(queries, samples)
    rows = early_stop_online.sweep(workload, SLO_S, max_rate)
    summary = early_stop_online.summarize(rows, SLO_S, workload.difficulty)
    name = f"online_n{samples}"
    _write(folder, f"{name}.json", {"summary": summary, "slots": early_stop_online.SLOTS,
                                    "samples": samples,
                                    "max_rate_for_32_samples_qps": max_rate,
                                    "rows": rows})
    early_stop_online.plot_online(rows, summary, folder / f"{name}.png")
    print(json.dumps(summary, indent=1))


def probe(folder: Path) -> None:
    import early_stop_probe

    report = anyio.run(early_stop_probe.run_probe_benchmark)
    _write(folder, "probe.json", report)
    print(json.dumps(report["total"], indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["batch", "online", "probe", "all"])
    parser.add_argument("-o", "--output", default="results/early_stop")
    parser.add_argument("--queries", type=int, default=800,
                        help="online: distinct synthetic questions to draw arrivals from")
    parser.add_argument("--samples", default="32,64",
                        help="online: samples per query; a comma-separated list runs each")
    parser.add_argument("--max-rate", type=float, default=None,
                        help="online: skip rates above this many queries/s of 32 samples "
                             "(scaled by 32/n for n samples): a shorter run, whose highest "
                             "rates may be lower bounds")
    args = parser.parse_args()
    folder = Path(args.output)
    print(f"python {platform.python_version()} on {platform.machine()}")
    if args.part in ("batch", "all"):
        batch(folder)
    if args.part in ("online", "all"):
        for samples in args.samples.split(","):
            online(folder, args.queries, int(samples), args.max_rate)
    if args.part in ("probe", "all"):
        probe(folder)


if __name__ == "__main__":
    main()
