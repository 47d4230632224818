"""Writing results: `results.json`, a latency-versus-rate plot, and a printed table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from taskloom.bench.metrics import BenchRow

RESULTS_FILE = "results.json"
PLOT_FILE = "latency_vs_rate.png"


def write_results(rows: Sequence[BenchRow], out_dir: Path) -> Path:
    """`OUT/results.json`: a list with one object per (policy, rate)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / RESULTS_FILE
    path.write_text(json.dumps([row.to_json() for row in rows], indent=2) + "\n")
    return path


def read_results(path: Path) -> list[BenchRow]:
    return [BenchRow.from_json(item) for item in json.loads(path.read_text())]


def plot_latency_vs_rate(rows: Sequence[BenchRow], out_dir: Path) -> Path:
    """Mean and p95 program latency against arrival rate, one line per policy."""
    # matplotlib takes a second to import; only the PNG needs it.
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
    for policy in dict.fromkeys(row.policy for row in rows):
        mine = sorted((r for r in rows if r.policy == policy), key=lambda r: r.rate)
        rates = [r.rate for r in mine]
        axes[0].plot(rates, [_nan(r.mean_latency_s) for r in mine], marker="o", label=policy)
        axes[1].plot(rates, [_nan(r.p95_latency_s) for r in mine], marker="o", label=policy)
    for axis, title in zip(axes, ("mean program latency", "p95 program latency"), strict=True):
        axis.set_title(title)
        axis.set_xlabel("arrival rate (programs/s)")
        axis.set_ylabel("seconds")
        axis.grid(alpha=0.3)
        axis.legend()
    workloads = ", ".join(dict.fromkeys(row.workload for row in rows))
    backends = ", ".join(dict.fromkeys(row.backend for row in rows))
    figure.suptitle(f"{workloads} on {backends}")
    figure.tight_layout()
    path = out_dir / PLOT_FILE
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def results_table(rows: Sequence[BenchRow]) -> Table:
    """Latencies in seconds; `s/tok` is latency per generated token, `busy` the engines'
    busy fraction, `pre` their preemptions."""
    workloads = ", ".join(dict.fromkeys(row.workload for row in rows))
    table = Table(title=f"taskloom bench: {workloads}", caption=_TABLE_CAPTION)
    columns = ("policy", "rate", "n", "fail", "mean", "p50", "p95", "p99", "s/tok",
               "prog/s", "busy", "pre")
    for column in columns:
        table.add_column(column, justify="left" if column == "policy" else "right",
                         no_wrap=True)
    for row in rows:
        table.add_row(
            row.policy, f"{row.rate:g}", str(row.programs), str(row.failed_programs),
            _seconds(row.mean_latency_s), _seconds(row.p50_latency_s),
            _seconds(row.p95_latency_s), _seconds(row.p99_latency_s),
            _small(row.mean_token_latency_s),
            _small(row.throughput_programs_per_s), _fraction(row.busy_fraction),
            _count(row.preemptions),
        )
    return table


_TABLE_CAPTION = (
    "latencies in s; s/tok: latency per generated token; busy: engine busy fraction; "
    "pre: preemptions"
)


PIPED_WIDTH = 110


def print_results(rows: Sequence[BenchRow], console: Console | None = None) -> None:
    """Print the table to stdout; piped output gets 110 columns, not rich's 80."""
    out = console or Console()
    if console is None and not out.is_terminal:
        out = Console(width=PIPED_WIDTH)
    out.print(results_table(rows))


def print_engine_shares(rows: Sequence[BenchRow], console: Console) -> None:
    """Each point's calls per engine, when it ran on several real engines."""
    for row in rows:
        if row.engine_names is None or row.calls_per_engine is None:
            continue
        failed = row.failed_attempts_per_engine or (0,) * len(row.engine_names)
        shares = ", ".join(
            f"{name} {calls} calls" + (f" ({lost} failed, resumed elsewhere)" if lost else "")
            for name, calls, lost in zip(row.engine_names, row.calls_per_engine, failed,
                                         strict=True))
        console.print(f"{row.policy} @ {row.rate:g}/s: {shares}", markup=False)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def _small(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _count(value: int | None) -> str:
    return "-" if value is None else str(value)
