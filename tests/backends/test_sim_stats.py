"""The engine's counters and their snapshot."""

from __future__ import annotations

from dataclasses import fields

from taskloom.backends.sim.stats import SimStats, StatsTally


def test_the_tally_and_its_snapshot_have_the_same_fields() -> None:
    assert [f.name for f in fields(StatsTally)] == [f.name for f in fields(SimStats)]


def test_a_snapshot_copies_every_counter_and_does_not_follow_the_tally() -> None:
    tally = StatsTally()
    for number, field in enumerate(fields(StatsTally), start=1):
        setattr(tally, field.name, number)
    snapshot = tally.snapshot()
    assert [getattr(snapshot, f.name) for f in fields(SimStats)] == list(
        range(1, len(fields(SimStats)) + 1))
    tally.steps += 100
    assert snapshot.steps == 1
