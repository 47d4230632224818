"""Writing a scaling run: `scaling.json`, a printed table, and `scaling.png`."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from taskloom.bench.scaling import ScalingResult, efficiency_text

SCALING_FILE = "scaling.json"
SCALING_PLOT_FILE = "scaling.png"
SCALING_POINTS_FILE = "scaling_points.jsonl"  # one point a line, written as each ends


def write_scaling(result: ScalingResult, out_dir: Path) -> Path:
    """`OUT/scaling.json`: the target rule, one row per (policy, engine count), and every
    point measured."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / SCALING_FILE
    path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return path


def scaling_table(result: ScalingResult) -> Table:
    table = Table(title="scale-out: highest rate at the target latency", caption=result.rule)
    for column in ("policy", "engines", "programs", "target s", "prog/s", "per engine",
                   "efficiency", "router µs/call", "hit rate"):
        table.add_column(column, justify="left" if column == "policy" else "right",
                         no_wrap=True)
    for row in result.rows:
        bound = "+" if row.lower_bound else ""
        table.add_row(
            row.policy, str(row.engines), str(row.programs),
            f"{row.target_mean_latency_s:.1f}", f"{row.rate_at_target:.2f}{bound}",
            f"{row.rate_per_engine_at_target:.3f}", efficiency_text(row),
            "-" if row.router_cpu_us_per_call is None else f"{row.router_cpu_us_per_call:.1f}",
            "-" if row.prefix_cache_hit_rate is None else f"{row.prefix_cache_hit_rate:.2f}",
        )
    return table


def print_scaling(result: ScalingResult, console: Console | None = None) -> None:
    out = console or Console()
    if console is None and not out.is_terminal:
        out = Console(width=120)
    out.print(scaling_table(result))


def plot_scaling(result: ScalingResult, out_dir: Path) -> Path:
    """Rate at the target against engine count (with linear from the fewest engines),
    and each count's mean latency against the per-engine rate."""
    # matplotlib takes a second to import; only the PNG needs it.
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for policy in dict.fromkeys(row.policy for row in result.rows):
        rows = [row for row in result.rows if row.policy == policy]
        counts = [row.engines for row in rows]
        axes[0].plot(counts, [row.rate_at_target for row in rows], marker="o", label=policy)
        first = rows[0]
        axes[0].plot(counts, [first.rate_at_target * c / first.engines for c in counts],
                     linestyle="--", color="grey", linewidth=1,
                     label=f"linear from {first.engines}")
        axes[1].axhline(first.target_mean_latency_s, color="grey", linestyle="--",
                        linewidth=1)
        for count in counts:
            points = sorted((p for p in result.points
                             if p.row.policy == policy and p.row.engines == count),
                            key=lambda p: p.rate_per_engine)
            axes[1].plot([p.rate_per_engine for p in points],
                         [p.steady_mean_latency_s for p in points], marker="o",
                         label=f"{policy} x{count}")
    axes[0].set_title("programs/s at the target latency")
    axes[0].set_xlabel("engines")
    axes[1].set_title("steady mean latency (target dashed)")
    axes[1].set_xlabel("arrival rate per engine (programs/s)")
    axes[1].set_ylabel("seconds")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path = out_dir / SCALING_PLOT_FILE
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
