"""Reading the points: throughput at equal latency, the headline target, the summary."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from typing import Any

from taskloom.bench.autellix.ceilings import capacity_ceiling, locality_ceiling


def rate_at_latency(curve: Sequence[tuple[float, float]], target: float) -> tuple[float, bool]:
    """The arrival rate at which a policy's mean latency reaches `target`, interpolated
    linearly between measured rates. (rate, exact): when the curve stays below the
    target at every measured rate, the highest rate is returned with exact=False (a lower
    bound); when it starts above, (0, True)."""
    points = sorted(curve)
    if points[0][1] > target:
        return 0.0, True
    for (r0, l0), (r1, l1) in itertools.pairwise(points):
        if l0 <= target <= l1 and l1 > l0:
            return r0 + (r1 - r0) * (target - l0) / (l1 - l0), True
    return points[-1][0], False


def throughput_at_equal_latency(
    curves: dict[str, list[tuple[float, float]]], baseline: str, policy: str
) -> list[dict[str, Any]]:
    """For every measured point of `baseline`: the rate `policy` sustains at the same
    mean latency, and the ratio to the baseline's rate."""
    rows = []
    lowest = min(rate for rate, _ in curves[policy])
    for rate, latency in sorted(curves[baseline]):
        if rate < lowest:
            continue  # `policy` was not run that lightly loaded: nothing to read off
        other, exact = rate_at_latency(curves[policy], latency)
        rows.append({"baseline_rate": rate, "mean_latency_s": latency, "rate": other,
                     "ratio": other / rate if rate else math.nan,
                     "lower_bound": not exact})
    return rows


TARGET_FACTOR = 2.0
TARGET_RULE = (f"target mean latency = {TARGET_FACTOR:g} x the fcfs steady-state mean at "
               "the lowest measured rate (light load); each policy's rate at that latency "
               "is interpolated on its own curve")
BASELINES = ("fcfs", "mlfq", "plas-rr", "atlas-rr", "plas-ll", "atlas-ll")
COMPARED = ("atlas", "plas", "sjf-oracle", "mlfq")


def at_target(curves: dict[str, list[tuple[float, float]]]) -> dict[str, Any] | None:
    """The headline: every policy's rate at the target latency of `TARGET_RULE`, and
    its ratio to each baseline's."""
    if "fcfs" not in curves:
        return None
    target = TARGET_FACTOR * min(curves["fcfs"])[1]
    rates = {}
    for label, curve in curves.items():
        rate, exact = rate_at_latency(curve, target)
        rates[label] = {"rate": rate, "lower_bound": not exact}
    ratios = {
        f"{policy}/{baseline}": {
            "ratio": rates[policy]["rate"] / rates[baseline]["rate"]
            if rates[baseline]["rate"] else math.nan,
            "lower_bound": rates[policy]["lower_bound"],
            "upper_bound": rates[baseline]["lower_bound"],
        }
        for baseline in BASELINES if baseline in rates
        for policy in rates if policy != baseline
    }
    return {"rule": TARGET_RULE, "target_mean_latency_s": target, "rates": rates,
            "ratios": ratios}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {name: _summarize_workload(points) for name, points in by_setting(records).items()}


def by_setting(records: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The points of each (group, workload, engine regime), named `group/workload`, with
    `@engine` appended for a regime other than the default."""
    settings: dict[str, list[dict[str, Any]]] = {}
    for record in sorted(records, key=lambda r: (r["group"], r["row"]["workload"])):
        engine = record.get("engine", "h100")
        name = f"{record['group']}/{record['row']['workload']}"
        name += "" if engine == "h100" else f"@{engine}"
        settings.setdefault(name, []).append(record)
    return settings


def steady_figure(point: dict[str, Any], key: str) -> Any:
    """A steady-window figure; rows from before the window existed fall back to all
    programs."""
    steady = point.get("steady")
    return steady[key] if steady is not None else point["row"][key]


def _summarize_workload(points: Sequence[dict[str, Any]]) -> dict[str, Any]:
    curves: dict[str, list[tuple[float, float]]] = {}
    for point in points:
        latency = steady_figure(point, "mean_latency_s")
        if latency is not None:
            curves.setdefault(point["label"], []).append((point["row"]["rate"], latency))
    table = {
        point["label"] + f"@{point['row']['rate']:g}": {
            key: steady_figure(point, key)
            for key in ("mean_latency_s", "p50_latency_s", "p95_latency_s", "p99_latency_s")
        } | {
            key: point["row"][key]
            for key in ("max_latency_s", "throughput_tokens_per_s", "failed_programs",
                        "programs", "preemptions")
        } | {"scheduler_preemptions": point["scheduler"]["preemptions"],
             "promotions": point["scheduler"]["promotions"],
             "prefix_cache_hit_rate": point["scheduler"]["prefix_cache_hit_rate"],
             "by_kind": point["by_kind"]}
        for point in sorted(points, key=lambda p: (p["label"], p["row"]["rate"]))
    }
    ratios = {
        f"{policy}/{baseline}": throughput_at_equal_latency(curves, baseline, policy)
        for baseline in BASELINES
        if baseline in curves and points[0]["group"] != "sweep"
        for policy in curves
        if policy != baseline and policy in COMPARED
    }
    worst = {
        label: max(p["row"]["max_latency_s"] or 0.0 for p in points if p["label"] == label)
        for label in curves
    }
    # A sweep measures every variant at one rate: there is no curve to read a rate from.
    headline = at_target(curves) if points[0]["group"] != "sweep" else None
    return {"at_target": headline, "throughput_at_equal_mean_latency": ratios,
            "max_latency_any_rate_s": worst,
            "capacity_ceiling": capacity_ceiling(points, headline),
            "locality_ceiling": locality_ceiling(points),
            "points": table}
