"""The regime map: a tiny cell end to end on virtual time, and the no-regret arithmetic."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskloom.bench.autellix.points import ENGINES, run_one
from taskloom.bench.autellix.regime import (
    REGIME_POLICIES,
    RegimeCell,
    cell_specs,
    cell_summary,
    memory_bound,
    no_regret,
    write_regime,
)


def point(label: str, rate: float, mean: float, p99: float, preemptions: int = 0,
          hit: float = 0.9) -> dict[str, Any]:
    return {"label": label, "row": {"rate": rate, "preemptions": preemptions,
                                    "generated_tokens": 1000, "throughput_tokens_per_s": 10.0},
            "engine_busy_s": [50.0],
            "steady": {"mean_latency_s": mean, "p99_latency_s": p99},
            "scheduler": {"prefix_cache_hit_rate": hit}, "engine_peak_running": [4]}


def test_the_seqs256_profile_is_the_h100_with_a_lower_sequence_cap() -> None:
    h100, seqs = ENGINES["h100"], ENGINES["h100-seqs256"]
    assert seqs.max_num_seqs == 256 and h100.max_num_seqs == 1024
    assert seqs.num_kv_blocks == h100.num_kv_blocks


def test_no_regret_passes_within_three_percent_on_mean_and_p99() -> None:
    points = [point("fcfs", 1.0, 10.0, 30.0), point("plas", 1.0, 10.2, 30.9),
              point("fcfs", 2.0, 20.0, 50.0), point("plas", 2.0, 19.0, 48.0)]
    check = no_regret(points)
    assert check["passed"]
    assert abs(check["worst_ratio"] - 1.03) < 1e-9 and check["worst_at"] == "p99@1"


def test_no_regret_fails_on_one_rate_and_names_the_worst_ratio() -> None:
    # Better on the mean everywhere, but p99 4% worse at rate 2: a FAIL.
    points = [point("fcfs", 1.0, 10.0, 30.0), point("plas", 1.0, 9.0, 30.0),
              point("fcfs", 2.0, 20.0, 50.0), point("plas", 2.0, 18.0, 52.0)]
    check = no_regret(points)
    assert not check["passed"]
    assert abs(check["worst_ratio"] - 1.04) < 1e-9 and check["worst_at"] == "p99@2"
    assert [r["rate"] for r in check["rates"]] == [1.0, 2.0]


def test_memory_bound_names_the_rules_that_fired() -> None:
    calm = [point("fcfs", 1.0, 10.0, 30.0, hit=0.9), point("fcfs", 2.0, 10.0, 30.0, hit=0.88)]
    assert memory_bound(calm, 1024)["rules_fired"] == []
    assert memory_bound(calm, 1024)["busy_fraction_max"] == 0.5
    dropping = [point("fcfs", 1.0, 10.0, 30.0, hit=0.9),
                point("fcfs", 2.0, 10.0, 30.0, preemptions=3, hit=0.6)]
    regime = memory_bound(dropping, 4)
    assert regime["memory_bound"]
    assert regime["rules_fired"] == ["preemptions", "prefix-hit drop", "seq cap reached"]


def test_a_tiny_cell_gives_one_row_with_every_column(tmp_path: Path) -> None:
    cell = RegimeCell("chat", "h100-kv16k", 4, (1.0, 4.0))
    specs = cell_specs(cell, policies=("fcfs", "plas"))
    points = [run_one(spec) for spec in specs]
    row = cell_summary(cell, points, ENGINES[cell.engine].max_num_seqs)
    assert row["cell"] == "chat@h100-kv16k" and row["programs"] == 4
    assert [r["rate"] for r in row["no_regret"]["rates"]] == [1.0, 4.0]
    assert set(row["gains_at_target"]) == {"plas"}
    table = write_regime(tmp_path, [row])
    header, separator, body = table.splitlines()[2:5]
    columns = 7 + len(REGIME_POLICIES)
    assert header.count("|") == separator.count("|") == body.count("|") == columns + 1
    assert body.startswith("| chat@h100-kv16k | 1, 4 |")
    assert ("PASS" in body) == row["no_regret"]["passed"]
    assert (tmp_path / "regime.json").exists() and "chat 4" in table.splitlines()[0]
