"""Replaying recorded samples: tokens spent, aborted partial samples, and widths."""

from __future__ import annotations

import pytest

from taskloom.orchestrator.certainty.replay import HopelessCut, RecordedQuery, replay
from taskloom.orchestrator.certainty.rules import BetaRule, NeverStop

UNANIMOUS = RecordedQuery(answers=("7",) * 8, lengths=(10, 20, 30, 40, 50, 60, 70, 80),
                          correct="7")


def test_sequential_replay_spends_only_the_samples_it_judges() -> None:
    outcome = replay(UNANIMOUS, BetaRule(0.95), width=1)
    assert outcome.answer == "7" and outcome.samples_used == 4
    assert outcome.samples_launched == 4 and outcome.tokens == 10 + 20 + 30 + 40
    assert outcome.stop_reason == "rule"


def test_parallel_replay_counts_the_partial_tokens_of_aborted_samples() -> None:
    outcome = replay(UNANIMOUS, BetaRule(0.95), width=8)
    # All 8 start at step 0; the 4th finishes at step 40, when 4 more are running.
    assert outcome.samples_used == 4 and outcome.samples_launched == 8
    assert outcome.tokens == 10 + 20 + 30 + 40 + 4 * 40


def test_width_two_reuses_slots_after_judging() -> None:
    outcome = replay(UNANIMOUS, BetaRule(0.95), width=2)
    # s0 0-10, s1 0-20, s2 10-40, s3 20-60: the rule fires at 60; s4 (40-) ran 20 steps.
    assert outcome.samples_used == 4 and outcome.samples_launched == 5
    assert outcome.tokens == 10 + 20 + 30 + 40 + 20


def test_without_a_rule_everything_is_spent_and_the_majority_wins() -> None:
    query = RecordedQuery(("1", "2", "2", None), (5, 5, 5, 5), correct="2")
    outcome = replay(query, NeverStop(), width=4)
    assert outcome.answer == "2" and outcome.tokens == 20
    assert outcome.stop_reason == "exhausted" and outcome.samples_used == 4


def test_a_flat_query_is_cut_at_its_budget() -> None:
    scattered = RecordedQuery(tuple(str(i) for i in range(32)), (1,) * 32)
    outcome = replay(scattered, BetaRule(0.95), hopeless=HopelessCut(budget=8))
    assert outcome.stop_reason == "hopeless" and outcome.samples_used == 8
    assert outcome.certainty == pytest.approx(0.0)


def test_recorded_queries_need_matching_lengths() -> None:
    with pytest.raises(ValueError, match="one length per answer"):
        RecordedQuery(("1", "2"), (3,))
