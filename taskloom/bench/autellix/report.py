"""Tables, plots and `summary.json` from `points.json`."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from taskloom.bench.autellix.analysis import by_setting, steady_figure, summarize
from taskloom.bench.autellix.points import ENGINES

_PANELS = (("mean_latency_s", "mean", True), ("p95_latency_s", "p95", True),
           ("p99_latency_s", "p99", True), ("max_latency_s", "max", False))


def plot(records: Sequence[dict[str, Any]], out: Path) -> list[Path]:
    # Lazy on purpose: only the report draws; the processes that run points never do.
    # matplotlib takes a second to import; only the PNGs need it.
    import matplotlib

    matplotlib.use("Agg")  # files only; never a window
    import matplotlib.pyplot as plt

    paths = []
    summary = summarize(records)
    for name, points in by_setting(records).items():
        if points[0]["group"] == "sweep":
            continue
        figure, axes = plt.subplots(1, len(_PANELS), figsize=(20, 4.6), sharex=True)
        for label in dict.fromkeys(p["label"] for p in points):
            line = sorted((p for p in points if p["label"] == label),
                          key=lambda p: p["row"]["rate"])
            rates = [p["row"]["rate"] for p in line]
            for axis, (key, _, steady) in zip(axes, _PANELS, strict=True):
                values = [steady_figure(p, key) if steady else p["row"][key] for p in line]
                axis.plot(rates, [math.nan if v is None else v for v in values],
                          marker="o", label=label)
        target = (summary[name]["at_target"] or {}).get(
            "target_mean_latency_s")
        if target is not None:
            axes[0].axhline(target, color="grey", linestyle="--", linewidth=1,
                            label=f"target {target:.0f} s")
        for axis, (_, title, steady) in zip(axes, _PANELS, strict=True):
            window = "steady window" if steady else "all programs"
            axis.set_title(f"{title} latency ({window})")
            axis.set_xlabel("arrival rate (programs/s)")
            axis.set_ylabel("program latency (s)")
            axis.grid(alpha=0.3)
            axis.legend(fontsize=8)
        engines = points[0]["row"]["engines"]
        regime = points[0].get("engine", "h100")
        figure.suptitle(f"{points[0]['row']['workload']}: simulated H100 (Llama 3 8B, "
                        f"{ENGINES[regime].kv_capacity_tokens // 1000}k tokens of KV) "
                        f"x {engines}, {points[0]['row']['programs']} programs per point")
        figure.tight_layout()
        path = out / f"latency_{name.replace('/', '_').replace('@', '_')}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        paths.append(path)
    return paths


def sweep_table(records: Sequence[dict[str, Any]]) -> str:
    """The sweep as a Markdown table, best mean first per (workload, rate)."""
    lines = []
    sweep = [r for r in records if r["group"] == "sweep"]
    def setting(record: dict[str, Any]) -> tuple[str, float, int]:
        return record["row"]["workload"], record["row"]["rate"], record["row"]["programs"]

    for key in sorted({setting(r) for r in sweep}):
        points = sorted((r for r in sweep if setting(r) == key),
                        key=lambda r: steady_figure(r, "mean_latency_s") or math.inf)
        lines += [f"### {key[0]} at {key[1]:g} programs/s, {key[2]} programs "
                  "(steady window)", "",
                  "| variant | mean s | p95 s | p99 s | max s (all) | tokens/s | "
                  "taskloom preemptions | engine preemptions | promotions |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in points:
            lines.append(
                f"| {r['label']} | {steady_figure(r, 'mean_latency_s'):.1f} | "
                f"{steady_figure(r, 'p95_latency_s'):.1f} | "
                f"{steady_figure(r, 'p99_latency_s'):.1f} | "
                f"{r['row']['max_latency_s']:.1f} | {r['row']['throughput_tokens_per_s']:.0f} | "
                f"{r['scheduler']['preemptions']} | {r['row']['preemptions']} | "
                f"{r['scheduler']['promotions']} |")
        lines.append("")
    return "\n".join(lines)


def write_report(out: Path) -> dict[str, Any]:
    records = json.loads((out / "points.json").read_text())
    summary = summarize(records)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    for path in plot(records, out):
        print(f"wrote {path}")
    if any(r["group"] == "sweep" for r in records):
        (out / "sweep.md").write_text(sweep_table(records))
        print(f"wrote {out / 'sweep.md'}")
    print(f"wrote {out / 'summary.json'}")
    return summary
