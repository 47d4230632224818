"""Reading rates off latency curves, and the headline at the target."""

from __future__ import annotations

import pytest

from taskloom.bench.autellix.analysis import at_target, rate_at_latency, steady_figure


def test_the_rate_at_a_latency_is_interpolated_between_measured_rates() -> None:
    curve = [(1.0, 10.0), (2.0, 20.0), (3.0, 60.0)]
    assert rate_at_latency(curve, 40.0) == (2.5, True)
    assert rate_at_latency(curve, 100.0) == (3.0, False)  # a lower bound
    assert rate_at_latency(curve, 5.0) == (0.0, True)


def test_the_headline_compares_every_policy_at_twice_fcfs_light_latency() -> None:
    curves = {"fcfs": [(1.0, 10.0), (2.0, 30.0)], "plas": [(1.0, 10.0), (2.0, 15.0),
                                                             (3.0, 25.0)]}
    headline = at_target(curves)
    assert headline is not None and headline["target_mean_latency_s"] == 20.0
    assert headline["rates"]["fcfs"]["rate"] == pytest.approx(1.5)
    assert headline["ratios"]["plas/fcfs"]["ratio"] == pytest.approx(2.5 / 1.5)


def test_a_steady_figure_falls_back_to_the_whole_row() -> None:
    assert steady_figure({"steady": {"p95": 1.0}, "row": {"p95": 2.0}}, "p95") == 1.0
    assert steady_figure({"row": {"p95": 2.0}}, "p95") == 2.0
