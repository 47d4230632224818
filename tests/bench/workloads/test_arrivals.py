"""Poisson arrivals: a seed fixes them, the rate sets their mean gap."""

from __future__ import annotations

import itertools
import statistics

import pytest

from taskloom.bench.workloads import WorkloadError, poisson_arrivals


def test_the_same_seed_gives_the_same_times() -> None:
    assert poisson_arrivals(2.0, 50, seed=7) == poisson_arrivals(2.0, 50, seed=7)


def test_another_seed_gives_other_times() -> None:
    assert poisson_arrivals(2.0, 50, seed=7) != poisson_arrivals(2.0, 50, seed=8)


def test_times_increase_from_zero() -> None:
    times = poisson_arrivals(5.0, 200, seed=1)
    assert times[0] > 0
    assert all(later > earlier for earlier, later in itertools.pairwise(times))


def test_the_mean_gap_is_one_over_the_rate() -> None:
    times = poisson_arrivals(4.0, 4000, seed=3)
    gaps = [b - a for a, b in zip([0.0, *times], times, strict=False)]
    assert statistics.fmean(gaps) == pytest.approx(0.25, rel=0.05)
    # Exponential gaps: the standard deviation equals the mean.
    assert statistics.pstdev(gaps) == pytest.approx(0.25, rel=0.1)


def test_more_programs_extend_the_same_arrivals() -> None:
    assert poisson_arrivals(1.0, 30, seed=2)[:10] == poisson_arrivals(1.0, 10, seed=2)


@pytest.mark.parametrize("rate", [0.0, -1.0])
def test_a_rate_that_is_not_positive_is_refused(rate: float) -> None:
    with pytest.raises(WorkloadError, match="must be positive"):
        poisson_arrivals(rate, 5, seed=0)
