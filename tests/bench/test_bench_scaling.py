"""Scale-out on the simulator: the engines list, one row per engine count, the target and
the efficiency read off the points, and the router's cost per call."""

from __future__ import annotations

import pytest

from taskloom.backends.factory import BackendName
from taskloom.bench.metrics import BenchRow
from taskloom.bench.runner import BenchConfig, BenchUsageError
from taskloom.bench.scaling import (
    GIVEN_TARGET_RULE,
    TARGET_RULE,
    ScalingPoint,
    engine_counts,
    run_scaling,
    scaling_rows,
)
from taskloom.bench.workloads import WorkloadOptions


@pytest.mark.parametrize(
    ("text", "counts"),
    [("4", (4,)), ("1,2,4", (1, 2, 4)), (" 8, 1 ,2", (1, 2, 8)), ("32", (32,))],
)
def test_engine_counts_parse_one_or_a_list(text: str, counts: tuple[int, ...]) -> None:
    assert engine_counts(text) == counts


@pytest.mark.parametrize(
    ("text", "message"),
    [("1,two", "whole numbers"), ("0", "at least 1"), ("1,-2", "at least 1"),
     ("", "whole numbers"), ("2,2", "lists 2 twice"), ("1.5", "whole numbers")],
)
def test_bad_engine_counts_are_refused(text: str, message: str) -> None:
    with pytest.raises(BenchUsageError, match=message):
        engine_counts(text)


def tiny_config(policy: str = "plas", **changes: object) -> BenchConfig:
    settings: dict[str, object] = {
        "workload": "chat", "policies": (policy,), "rates": (0.5, 8.0), "programs": 3,
        "seed": 5, "options": WorkloadOptions(max_output_tokens=24),
    }
    settings.update(changes)
    return BenchConfig(**settings)  # type: ignore[arg-type]


def test_a_tiny_study_gives_one_row_per_engine_count() -> None:
    result = run_scaling(tiny_config(), (1, 2))
    assert [(row.policy, row.engines) for row in result.rows] == [("plas", 1), ("plas", 2)]
    # Programs and rates are per engine: two engines get twice of each.
    points = {(p.row.engines, p.rate_per_engine): p for p in result.points}
    assert sorted(points) == [(1, 0.5), (1, 8.0), (2, 0.5), (2, 8.0)]
    assert points[(2, 8.0)].row.rate == 16.0 and points[(2, 8.0)].row.programs == 6
    assert points[(1, 8.0)].row.programs == 3
    for point in result.points:
        assert point.row.failed_programs == 0 and point.steady_mean_latency_s is not None
        # The router was timed: it made decisions, and they took some CPU time.
        assert point.decision_passes >= point.row.llm_calls > 0
        assert point.router_cpu_us_per_call is not None and point.router_cpu_us_per_call > 0
    one, two = result.rows
    assert result.rule == TARGET_RULE
    light = points[(1, 0.5)].steady_mean_latency_s
    assert light is not None and one.target_mean_latency_s == pytest.approx(2 * light)
    assert one.efficiency == pytest.approx(1.0)
    assert two.efficiency == pytest.approx(
        two.rate_at_target / (2 * one.rate_at_target))
    assert two.programs == 6 and two.rates_per_engine == (0.5, 8.0)


def test_a_given_target_replaces_the_light_load_rule() -> None:
    result = run_scaling(tiny_config(rates=(8.0,)), (1,), target_latency_s=1e6)
    (row,) = result.rows
    assert result.rule == GIVEN_TARGET_RULE
    assert row.target_mean_latency_s == 1e6
    assert row.lower_bound and row.rate_at_target == 8.0  # met at every measured rate


def test_settings_that_cannot_scale_are_refused() -> None:
    with pytest.raises(BenchUsageError, match="sim only"):
        run_scaling(tiny_config(backend=BackendName.VLLM), (1, 2))
    with pytest.raises(BenchUsageError, match="target latency must be > 0"):
        run_scaling(tiny_config(), (1, 2), target_latency_s=0.0)


def point(engines: int, rate_per_engine: float, mean: float, calls: int = 100,
          cpu_ns: int = 5_000_000) -> ScalingPoint:
    row = BenchRow(
        workload="mixed", policy="plas", rate=rate_per_engine * engines, programs=10 * engines,
        mean_latency_s=mean, p50_latency_s=mean, p95_latency_s=mean, p99_latency_s=mean,
        max_latency_s=mean, mean_token_latency_s=None, throughput_programs_per_s=None,
        preemptions=0, generated_tokens=1, busy_fraction=None, backend="sim",
        engines=engines, seed=0, failed_programs=0, llm_calls=calls, prompt_tokens=1,
        cached_prompt_tokens=0, throughput_tokens_per_s=None, makespan_s=None,
        engine_steps=None)
    return ScalingPoint(row, rate_per_engine, mean, calls, cpu_ns, cpu_ns, 0.5)


def test_rows_read_the_rate_at_the_target_and_the_efficiency() -> None:
    # One engine: 5 s at light load, so the target is 10 s, met at 1.5/s (between 1/s at
    # 6 s and 2/s at 14 s). Four engines reach 10 s at 4.8/s total: 0.8 of linear.
    rows = scaling_rows("plas", {
        1: [point(1, 0.25, 5.0), point(1, 1.0, 6.0), point(1, 2.0, 14.0)],
        4: [point(4, 0.25, 5.0), point(4, 1.0, 8.0), point(4, 1.5, 13.0)],
    })
    one, four = rows
    assert one.target_mean_latency_s == four.target_mean_latency_s == 10.0
    assert one.rate_at_target == pytest.approx(1.5)
    assert four.rate_at_target == pytest.approx(4.8)
    assert four.rate_per_engine_at_target == pytest.approx(1.2)
    assert four.efficiency == pytest.approx(0.8)
    assert not four.lower_bound
    # 3 points of 100 calls, 5 ms of decisions each: 50 µs a call.
    assert four.router_cpu_us_per_call == pytest.approx(50.0)


def test_a_count_that_misses_the_target_everywhere_scales_at_zero() -> None:
    rows = scaling_rows("plas", {1: [point(1, 1.0, 6.0), point(1, 2.0, 14.0)],
                                 2: [point(2, 1.0, 11.0), point(2, 2.0, 20.0)]},
                        target_latency_s=10.0)
    assert [row.rate_at_target for row in rows] == [pytest.approx(1.5), 0.0]
    assert rows[1].efficiency == 0.0
