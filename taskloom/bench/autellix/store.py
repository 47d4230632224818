"""Running many points in parallel processes, kept in `points.json` as they finish."""

from __future__ import annotations

import json
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from taskloom.bench.autellix.analysis import steady_figure
from taskloom.bench.autellix.points import PointSpec, run_one
from taskloom.bench.autellix.variants import Variant


def run_all(specs: Sequence[PointSpec], jobs: int, out: Path) -> list[dict[str, Any]]:
    """Run the points (in `jobs` processes), appending each record to `points.json` as it
    finishes, so a long run that stops keeps what it measured."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "points.json"
    records: list[dict[str, Any]] = json.loads(path.read_text()) if path.exists() else []
    done = {record_id(r) for r in records}
    todo = [s for s in specs if spec_id(s) not in done]
    print(f"{len(todo)} points to run ({len(specs) - len(todo)} already in {path})", flush=True)
    with ProcessPoolExecutor(max_workers=max(1, jobs)) as pool:
        for record in pool.map(run_one, todo):
            records.append(record)
            path.write_text(json.dumps(records, indent=1) + "\n")
            _print_record(record)
    return records


def spec_id(spec: PointSpec) -> str:
    return f"{spec.group}|{spec.workload_label}|{spec.programs}|{spec.rate}|{spec.engines}|" \
           f"{spec.seed}|{spec.variant.key}|{spec.engine}"


def record_id(record: dict[str, Any]) -> str:
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
        f"steady mean={_fmt(steady_figure(record, 'mean_latency_s'))} "
        f"p95={_fmt(steady_figure(record, 'p95_latency_s'))} "
        f"p99={_fmt(steady_figure(record, 'p99_latency_s'))} max(all)={_fmt(row['max_latency_s'])} "
        f"tok/s={row['throughput_tokens_per_s']:.0f} engine-preempt={row['preemptions']} "
        f"failed={row['failed_programs']} preempt={sched['preemptions']} "
        f"hit={sched['prefix_cache_hit_rate']:.2f} wall={record['wall_s']:.0f}s",
        flush=True,
    )


def _fmt(value: float | None) -> str:
    return "   -  " if value is None else f"{value:6.1f}"
