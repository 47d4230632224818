"""The sweep table lists variants best mean first."""

from __future__ import annotations

from taskloom.bench.autellix.report import sweep_table


def record(label: str, mean: float) -> dict[str, object]:
    figures = {"mean_latency_s": mean, "p95_latency_s": mean, "p99_latency_s": mean}
    return {"group": "sweep", "label": label, "steady": figures,
            "row": {"workload": "mixed", "rate": 2.0, "programs": 10, "max_latency_s": mean,
                    "throughput_tokens_per_s": 1.0, "preemptions": 0},
            "scheduler": {"preemptions": 0, "promotions": 0}}


def test_the_best_mean_comes_first() -> None:
    table = sweep_table([record("slow", 9.0), record("fast", 3.0)])
    assert "### mixed at 2 programs/s, 10 programs" in table
    assert table.index("| fast |") < table.index("| slow |")
