"""Which points each command runs."""

from __future__ import annotations

import argparse

from taskloom.bench.autellix.specs import balance_specs, policy_specs, sweep_specs
from taskloom.bench.autellix.store import spec_id


def args(**changes: object) -> argparse.Namespace:
    settings: dict[str, object] = {
        "workloads": ("mixed",), "policies": ("fcfs", "plas"), "rates": (1.0, 2.0),
        "programs": 10, "seed": 0, "engine": "h100", "engines": 4, "cap": 128,
        "factors": ("beta",), "mixed_coding_agent": False,
        "caps": (64, 128),
    }
    settings.update(changes)
    return argparse.Namespace(**settings)


def test_policies_run_side_by_side_rate_by_rate() -> None:
    specs = policy_specs(args())
    assert [(s.rate, s.variant.label) for s in specs] == [
        (1.0, "fcfs"), (1.0, "plas"), (2.0, "fcfs"), (2.0, "plas")]


def test_balance_runs_on_every_engine() -> None:
    specs = balance_specs(args(rates=None, programs=None))
    assert {s.engines for s in specs} == {4} and {s.group for s in specs} == {"balance"}
    assert specs[0].programs == 4 * 300


def test_a_sweep_names_each_setting_once() -> None:
    specs = sweep_specs(args(rates=(2.0,)))
    settings = [s.variant.setting for s in specs]
    assert len(settings) == len(set(settings))
    assert specs[0].variant.label == "fcfs"


def test_mixed_with_coding_agent_sessions_is_labelled_apart() -> None:
    plain, flagged = policy_specs(args()), policy_specs(args(mixed_coding_agent=True))
    assert {s.workload_label for s in plain} == {"mixed"}
    assert {s.workload_label for s in flagged} == {"mixed+coding-agent"}
    assert all(s.options.mixed_coding_agent for s in flagged)
    assert {spec_id(s) for s in plain}.isdisjoint(spec_id(s) for s in flagged)


def test_a_cap_sweep_runs_the_caps_asked_for() -> None:
    specs = sweep_specs(args(rates=(0.06,), factors=("caps",), caps=(6, 10)))
    assert [s.variant.label for s in specs] == ["fcfs", "plas cap=6", "plas cap=10"]
