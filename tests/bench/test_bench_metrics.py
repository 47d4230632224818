"""Per-point metrics: percentiles, token latency, throughput, failures left out."""

from __future__ import annotations

import pytest

from taskloom.bench.metrics import (
    BenchPoint,
    BenchRow,
    EngineReport,
    ProgramOutcome,
    percentile,
    summarize,
)

POINT = BenchPoint("chat", "fcfs", 2.0, "sim", 1, 0)


def outcome(index: int, arrival: float, finish: float, tokens: int = 10,
            succeeded: bool = True) -> ProgramOutcome:
    return ProgramOutcome(index, "chat", arrival, finish, succeeded, tokens, 100, 40, 2)


def test_percentiles_interpolate_between_ranks_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 50) == 2.5
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 4.0
    assert percentile(values, 95) == pytest.approx(3.85)
    assert percentile([], 50) is None


def test_summarize_fills_every_field_from_the_outcomes() -> None:
    outcomes = [outcome(0, 0.0, 2.0, tokens=4), outcome(1, 1.0, 5.0, tokens=8),
                outcome(2, 2.0, 3.0, tokens=0, succeeded=False)]
    row = summarize(POINT, outcomes, EngineReport(busy_fraction=0.5, preemptions=3, steps=9))
    assert row.programs == 3 and row.failed_programs == 1
    assert row.mean_latency_s == 3.0  # (2 + 4) / 2: the failed program is left out
    assert row.max_latency_s == 4.0
    assert row.mean_token_latency_s == pytest.approx((2 / 4 + 4 / 8) / 2)
    assert row.makespan_s == 5.0
    assert row.throughput_programs_per_s == pytest.approx(2 / 5)
    assert row.generated_tokens == 12 and row.llm_calls == 6
    assert row.preemptions == 3 and row.busy_fraction == 0.5 and row.engine_steps == 9
    assert BenchRow.from_json(row.to_json()) == row


def test_a_point_where_everything_failed_has_no_latencies() -> None:
    row = summarize(POINT, [outcome(0, 0.0, 1.0, succeeded=False)], EngineReport())
    assert row.mean_latency_s is None and row.p95_latency_s is None
    assert row.preemptions is None and row.busy_fraction is None
