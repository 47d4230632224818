"""The regime map: per (workload, engine) cell, is memory binding, how far could any
policy go, what each policy gains, and does the default policy never lose to fcfs."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskloom.bench.autellix.analysis import steady_figure, summarize
from taskloom.bench.autellix.ceilings import engine_busy_fraction
from taskloom.bench.autellix.points import ENGINES, PointSpec
from taskloom.bench.autellix.store import run_all
from taskloom.bench.autellix.variants import standard_variant

REGIME_POLICIES = ("fcfs", "plas", "atlas", "sjf-oracle")
DEFAULT_POLICY = "plas"
"""What `taskloom run` schedules with: the policy the no-regret check holds to."""
NO_REGRET_TOLERANCE = 0.03
"""The default may be at most 3% worse than fcfs, on mean and on p99 program latency,
at every measured rate of a cell."""
HIT_DROP = 0.10
"""A prefix-hit rate that falls by more than this from the lightest to the heaviest
rate (fcfs) says contexts are evicted before reuse: memory binds even without
preemptions."""


@dataclass(frozen=True)
class RegimeCell:
    workload: str
    engine: str
    programs: int
    rates: tuple[float, ...]

    @property
    def name(self) -> str:
        return f"{self.workload}@{self.engine}"


# Program counts are below the `run` defaults (mixed: half) so that the map runs in
# minutes on a shared 2-core machine; rates span light load to past each cell's knee (mixed on
# h100: the README's 1-3/s; on the 16k-token KV: 0.25-1/s).
REGIME_CELLS = (
    RegimeCell("mixed", "h100-kv16k", 150, (0.25, 0.5, 0.75, 1.0)),
    RegimeCell("mixed", "h100", 150, (1.0, 2.0, 2.5, 3.0)),
    RegimeCell("mixed", "h100-seqs256", 150, (1.0, 2.0, 2.5, 3.0)),
    # Long sessions (~128K contexts): light load, the 60-session knee, past it.
    RegimeCell("coding-agent", "h100", 40, (0.01, 0.05, 0.06)),
)
# No coding-agent cell on h100-seqs256: a session is one chain of calls, so 40 sessions
# never hold more than 40 calls in the engine, and a 256-sequence cap cannot bind.


def cell_specs(cell: RegimeCell, seed: int = 0,
               policies: Sequence[str] = REGIME_POLICIES) -> list[PointSpec]:
    return [PointSpec(cell.workload, cell.programs, rate, standard_variant(name), seed=seed,
                      engine=cell.engine)
            for rate in cell.rates for name in policies]


def no_regret(points: Sequence[dict[str, Any]], default: str = DEFAULT_POLICY,
              tolerance: float = NO_REGRET_TOLERANCE) -> dict[str, Any]:
    """Default over fcfs, mean and p99 steady latency, at every rate both ran. PASS when
    no ratio exceeds 1 + tolerance; the worst ratio is reported either way."""
    by_rate: dict[float, dict[str, dict[str, Any]]] = {}
    for point in points:
        by_rate.setdefault(point["row"]["rate"], {})[point["label"]] = point
    rows = []
    for rate, labels in sorted(by_rate.items()):
        if "fcfs" not in labels or default not in labels:
            continue
        row: dict[str, Any] = {"rate": rate}
        for key in ("mean_latency_s", "p99_latency_s"):
            base = steady_figure(labels["fcfs"], key)
            mine = steady_figure(labels[default], key)
            row[key.replace("_latency_s", "_ratio")] = mine / base if base else None
        rows.append(row)
    ratios = [(r[k], r["rate"], k) for r in rows for k in ("mean_ratio", "p99_ratio")
              if r[k] is not None]
    worst = max(ratios) if ratios else None
    return {"rule": f"{default} mean and p99 <= {1 + tolerance:g} x fcfs at every rate",
            "rates": rows, "passed": bool(ratios) and worst is not None
            and worst[0] <= 1 + tolerance,
            "worst_ratio": worst[0] if worst else None,
            "worst_at": f"{worst[2].split('_')[0]}@{worst[1]:g}" if worst else None}


def memory_bound(points: Sequence[dict[str, Any]], max_num_seqs: int) -> dict[str, Any]:
    """Which binding rules fire. Memory: engine preemptions > 0 at any point, or fcfs's
    prefix-hit rate dropping by more than `HIT_DROP` from its lightest to its heaviest
    rate. Sequences: some engine ran `max_num_seqs` requests at once, so requests queued
    in the engine for a batch slot, not for memory."""
    preemptions = max(p["row"]["preemptions"] for p in points)
    fcfs = sorted((p for p in points if p["label"] == "fcfs"), key=lambda p: p["row"]["rate"])
    hits = [p["scheduler"]["prefix_cache_hit_rate"] for p in fcfs]
    hit_drop = hits[0] - hits[-1] if hits else 0.0
    peak = max(max(p.get("engine_peak_running") or [0]) for p in points)
    rules = [name for name, fired in (("preemptions", preemptions > 0),
                                      ("prefix-hit drop", hit_drop > HIT_DROP),
                                      ("seq cap reached", peak >= max_num_seqs)) if fired]
    return {"memory_bound": preemptions > 0 or hit_drop > HIT_DROP, "rules_fired": rules,
            "max_engine_preemptions": preemptions, "fcfs_hit_rates": hits,
            "peak_running": peak, "max_num_seqs": max_num_seqs,
            "busy_fraction_max": max(engine_busy_fraction(p) or 0.0 for p in points)}


def cell_summary(cell: RegimeCell, points: Sequence[dict[str, Any]],
                 max_num_seqs: int) -> dict[str, Any]:
    summary = next(iter(summarize(points).values()))
    target = summary["at_target"]
    gains = {}
    if target is not None:
        for policy in REGIME_POLICIES[1:]:
            ratio = target["ratios"].get(f"{policy}/fcfs")
            if ratio is not None:
                gains[policy] = ratio
    ceiling = summary["capacity_ceiling"]
    return {"cell": cell.name, "workload": cell.workload, "engine": cell.engine,
            "programs": cell.programs, "rates": list(cell.rates),
            "regime": memory_bound(points, max_num_seqs),
            "target_mean_latency_s": target["target_mean_latency_s"] if target else None,
            "capacity_ceiling": ceiling["ceiling_over_fcfs_at_target"] if ceiling else None,
            "gains_at_target": gains,
            "no_regret": no_regret(points)}


def _gain(ratio: dict[str, Any] | None) -> str:
    if ratio is None:
        return "-"
    mark = ("+" if ratio["lower_bound"] else "") + ("-" if ratio["upper_bound"] else "")
    return f"{ratio['ratio']:.2f}{mark}x"


def _worst(check: dict[str, Any]) -> str:
    if check["worst_ratio"] is None:
        return "-"
    return f"{check['worst_ratio']:.3f} at {check['worst_at']}"


def regime_table(rows: Sequence[dict[str, Any]]) -> str:
    counts = ", ".join(sorted({f"{r['workload']} {r['programs']}" for r in rows}))
    lines = [
        f"Regime map (programs per point: {counts}; seed 0; middle 80% by arrival). "
        "Memory-bound: engine preemptions > 0, or fcfs's prefix-hit rate falls by more "
        f"than {HIT_DROP:g} from lightest to heaviest rate. Gains: rate at the target "
        "mean latency over fcfs's (+: lower bound, -: fcfs's rate a lower bound). "
        f"No regret: {DEFAULT_POLICY} mean and p99 within "
        f"{NO_REGRET_TOLERANCE:.0%} of fcfs at every rate.",
        "",
        "| cell | rates | memory-bound (rules fired) | max engine preemptions | fcfs hit rate "
        "light→heavy | peak running / max_num_seqs | capacity ceiling | "
        + " | ".join(f"{p}/fcfs" for p in REGIME_POLICIES[1:])
        + " | no regret (worst ratio) |",
        "|" + "---|" * (7 + len(REGIME_POLICIES)),
    ]
    for row in rows:
        regime, check = row["regime"], row["no_regret"]
        hits = regime["fcfs_hit_rates"]
        ceiling = row["capacity_ceiling"]
        lines.append(
            f"| {row['cell']} | {', '.join(f'{r:g}' for r in row['rates'])} | "
            f"{'yes' if regime['memory_bound'] else 'no'} "
            f"({', '.join(regime['rules_fired']) or 'none'}) | "
            f"{regime['max_engine_preemptions']} | "
            f"{f'{hits[0]:.2f}→{hits[-1]:.2f}' if hits else '-'} | "
            f"{regime['peak_running']} / {regime['max_num_seqs']} | "
            f"{'-' if ceiling is None else f'{ceiling:.2f}x'} | "
            + " | ".join(_gain(row["gains_at_target"].get(p)) for p in REGIME_POLICIES[1:])
            + f" | {'PASS' if check['passed'] else 'FAIL'} ({_worst(check)}) |")
    return "\n".join(lines) + "\n"


def write_regime(out: Path, rows: Sequence[dict[str, Any]]) -> str:
    out.mkdir(parents=True, exist_ok=True)
    (out / "regime.json").write_text(json.dumps(list(rows), indent=1) + "\n")
    table = regime_table(rows)
    (out / "regime.md").write_text(table)
    return table


def run_regime(out: Path, cells: Sequence[RegimeCell], jobs: int, seed: int = 0,
               run: bool = True) -> str:
    """Run every cell's points (kept, and resumed, in `out/regime/<cell>/points.json`),
    then write the map to `out/regime.md` and `out/regime.json`. With `run` False, only
    the cells whose points are all measured already go into the map."""
    rows = []
    for cell in cells:
        cell_dir = out / "regime" / cell.name
        specs = cell_specs(cell, seed)
        if run:
            points = run_all(specs, jobs, cell_dir)
        else:
            path = cell_dir / "points.json"
            points = json.loads(path.read_text()) if path.exists() else []
        mine = [p for p in points if p["row"]["programs"] == cell.programs
                and p["row"]["rate"] in cell.rates and p["row"]["seed"] == seed]
        if len(mine) < len(specs):
            continue  # not measured in full: no row rather than a partial one
        rows.append(cell_summary(cell, mine, ENGINES[cell.engine].max_num_seqs))
    return write_regime(out, rows)
