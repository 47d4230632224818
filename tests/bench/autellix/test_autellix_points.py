"""One point on the simulated engine, and the steady window of its programs."""

from __future__ import annotations

from taskloom.bench.autellix.points import PointSpec, latency_stats, run_one, steady_window
from taskloom.bench.autellix.variants import standard_variant
from taskloom.bench.metrics import ProgramOutcome
from taskloom.orchestrator.scheduler import policy_names


def outcome(index: int, arrival: float, latency: float) -> ProgramOutcome:
    return ProgramOutcome(index, "chat", arrival, arrival + latency, True, 1, 1, 0, 1)


def test_the_steady_window_leaves_out_a_tenth_at_each_end() -> None:
    outcomes = [outcome(i, float(i), float(i)) for i in range(20)]
    window = steady_window(reversed(outcomes))
    assert [o.index for o in window] == list(range(2, 18))
    assert latency_stats(window)["max_latency_s"] == 17.0


def test_a_point_reports_its_own_schedulers_counters_and_unregisters_it() -> None:
    before = policy_names()
    record = run_one(PointSpec("chat", 3, 2.0, standard_variant("plas")))
    assert record["row"]["programs"] == 3 and record["row"]["failed_programs"] == 0
    assert record["scheduler"]["prefix_cache_hit_rate"] >= 0.0
    assert record["scheduler"]["dead_engines"] == []
    assert policy_names() == before
