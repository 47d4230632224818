"""Two ceilings read off what the engines did: capacity and locality."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def engine_busy_fraction(point: dict[str, Any]) -> float | None:
    """The share of a point's run its engines spent computing (their mean busy time over
    the run's length, read as generated tokens / tokens per second); None without data."""
    row, busy = point["row"], point.get("engine_busy_s")
    throughput = row["throughput_tokens_per_s"]
    duration = row["generated_tokens"] / throughput if throughput else 0.0
    return sum(busy) / len(busy) / duration if busy and duration else None


def capacity_ceiling(
    points: Sequence[dict[str, Any]], headline: dict[str, Any] | None
) -> dict[str, Any] | None:
    """How far any scheduler could go past fcfs at the target, from what the engines did.

    A policy that sustains rate r for long generates r x (tokens per program) tokens/s,
    whatever it does with them. The most tokens/s any point produced (every policy, the
    SJF oracle and the saturated rates included) divided by the tokens per program is a
    measured ceiling on the sustainable rate; divided by fcfs's rate at the target, a
    ceiling on every policy's gain there. It holds where that point kept its engines
    busy (`engine_busy_fraction` near 1): larger batches would only add the little that
    the step cost model grants them. A ceiling below 1 says fcfs's rate at the target is
    itself past what the engine sustains, met only because a finite run ends first."""
    if headline is None or "fcfs" not in headline["rates"]:
        return None
    best = max(points, key=lambda p: p["row"]["throughput_tokens_per_s"])
    row = best["row"]
    per_program = row["generated_tokens"] / row["programs"]
    rate = row["throughput_tokens_per_s"] / per_program
    fcfs_rate = headline["rates"]["fcfs"]["rate"]
    return {
        "rule": "most generated tokens/s of any point / generated tokens per program",
        "max_tokens_per_s": row["throughput_tokens_per_s"],
        "at": f"{best['label']}@{row['rate']:g}",
        "engine_busy_fraction": engine_busy_fraction(best),
        "tokens_per_program": per_program,
        "ceiling_rate": rate,
        "fcfs_rate_at_target": fcfs_rate,
        "fcfs_tokens_per_s_at_target": fcfs_rate * per_program,
        "ceiling_over_fcfs_at_target": rate / fcfs_rate if fcfs_rate else None,
    }


def locality_ceiling(points: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per rate: what round-robin spends prefilling against what locality spends, as a
    share of round-robin's engine time. Where the KV cache does not bind (no engine
    preemptions), locality saves re-prefills and nothing else, so 1 / (1 - that share)
    bounds its throughput gain over round-robin. Where it binds, locality also saves the
    memory of contexts held twice, which this does not count."""
    rows = []
    for rate in sorted({p["row"]["rate"] for p in points}):
        at_rate = {p["label"]: p for p in points if p["row"]["rate"] == rate}
        local, spread = at_rate.get("plas"), at_rate.get("plas-rr")
        if local is None or spread is None or "engine_busy_s" not in spread:
            continue
        busy = sum(spread["engine_busy_s"])
        saved = sum(spread["engine_prefill_s"]) - sum(local["engine_prefill_s"])
        rows.append({"rate": rate, "round_robin_busy_s": busy,
                     "round_robin_prefill_s": sum(spread["engine_prefill_s"]),
                     "locality_prefill_s": sum(local["engine_prefill_s"]),
                     "saved_share": saved / busy if busy else None,
                     "gain_ceiling": busy / (busy - saved) if busy > saved else None})
    return rows
