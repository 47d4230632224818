"""The locality and capacity ceilings, by hand."""

from __future__ import annotations

import pytest

from taskloom.bench.autellix.ceilings import capacity_ceiling, locality_ceiling


def point(label: str, rate: float, busy: float, prefill: float) -> dict[str, object]:
    return {"label": label, "row": {"rate": rate, "throughput_tokens_per_s": busy,
                                    "generated_tokens": 100.0, "programs": 10},
            "engine_busy_s": [busy], "engine_prefill_s": [prefill]}


def test_locality_saves_the_prefill_round_robin_repeats() -> None:
    (row,) = locality_ceiling([point("plas", 1.0, 80.0, 10.0),
                               point("plas-rr", 1.0, 100.0, 30.0)])
    assert row["saved_share"] == pytest.approx(0.2)
    assert row["gain_ceiling"] == pytest.approx(100.0 / 80.0)


def test_the_capacity_ceiling_divides_by_fcfs_rate_at_the_target() -> None:
    points = [point("fcfs", 1.0, 50.0, 0.0), point("plas", 2.0, 200.0, 0.0)]
    ceiling = capacity_ceiling(points, {"rates": {"fcfs": {"rate": 4.0}}})
    assert ceiling is not None
    assert ceiling["ceiling_rate"] == pytest.approx(20.0)  # 200 tokens/s / 10 per program
    assert ceiling["ceiling_over_fcfs_at_target"] == pytest.approx(5.0)
    assert capacity_ceiling(points, None) is None
