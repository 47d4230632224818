"""Stopping rules against known sequences of answers: when they must and must not stop."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from taskloom.orchestrator.certainty.rules import (
    BetaRule,
    CertaindexRule,
    DirichletRule,
    NeverStop,
    StoppingRule,
    first_check_of,
    rule_from_spec,
)
from taskloom.orchestrator.certainty.tally import VoteTally
from taskloom.program.models import BetaStop, CertaindexStop, DirichletStop, LLMNode, NoStop


def stop_point(rule: StoppingRule, answers: Sequence[str | None]) -> int | None:
    """After how many samples the rule stops a query that draws `answers` in order."""
    tally = VoteTally()
    for count, answer in enumerate(answers, start=1):
        tally = tally.with_answer(answer)
        if rule.should_stop(tally):
            return count
    return None


UNANIMOUS = ["7"] * 16
SPLIT = ["7", "8"] * 8  # a 50/50 split: never decided
SCATTERED = [str(i) for i in range(16)]  # every sample differs
LATE_MAJORITY = ["1", "2", "3", "4", "5", "6"] + ["9"] * 10


@pytest.mark.parametrize(
    ("rule", "answers", "expected"),
    [
        (CertaindexRule(0.7, first_check=4), UNANIMOUS, 4),
        (CertaindexRule(0.7, first_check=2), UNANIMOUS, 2),
        (CertaindexRule(0.8, first_check=4), SPLIT, None),
        (CertaindexRule(0.7, first_check=4), SCATTERED, None),
        # 6 distinct answers then a run of 9s: certaindex is 0.519 after 16 samples.
        (CertaindexRule(0.5, first_check=4), LATE_MAJORITY, 16),
        (BetaRule(0.95), UNANIMOUS, 4),  # 1 - 2^-5 = 0.969 >= 0.95; 3 gives 0.9375
        (BetaRule(0.99), UNANIMOUS, 6),
        (BetaRule(0.95), SPLIT, None),
        (BetaRule(0.95), SCATTERED, None),
        (BetaRule(0.95), LATE_MAJORITY, 12),  # 6 nines against 1: 247/256 = 0.965
        (DirichletRule(0.95), UNANIMOUS, 4),
        (DirichletRule(0.95), SPLIT, None),
        (DirichletRule(0.95), SCATTERED, None),
        (DirichletRule(0.95), LATE_MAJORITY, 15),  # stricter than Beta with 6 rivals
        (NeverStop(), UNANIMOUS, None),
    ],
)
def test_stop_points_on_known_sequences(
    rule: StoppingRule, answers: list[str], expected: int | None
) -> None:
    assert stop_point(rule, answers) == expected


@pytest.mark.parametrize(
    "rule", [CertaindexRule(0.5, first_check=2), BetaRule(0.6), DirichletRule(0.6)]
)
def test_no_rule_stops_on_a_tie_however_lax(rule: StoppingRule) -> None:
    assert not rule.should_stop(VoteTally.from_counts([32, 32]))
    assert not rule.should_stop(VoteTally.from_counts([5, 5, 1]))
    assert rule.should_stop(VoteTally.from_counts([33, 31])) or rule.name != "certaindex"


def test_certaindex_rewards_many_samples_of_few_answers() -> None:
    # Entropy is normalized by log(n), so a near-even split of many samples scores high:
    # 8 against 7 has certaindex 0.74 and passes a lax threshold. Beta does not stop.
    near_split = VoteTally.from_counts([8, 7])
    assert CertaindexRule(0.7).should_stop(near_split)
    assert not CertaindexRule(0.8).should_stop(near_split)
    assert not BetaRule(0.95).should_stop(near_split)


def test_certaindex_never_checks_before_first_check() -> None:
    rule = CertaindexRule(0.5, first_check=8)
    assert not rule.should_stop(VoteTally.from_counts([7]))
    assert rule.should_stop(VoteTally.from_counts([8]))


def test_unparsed_samples_do_not_make_a_vote() -> None:
    only_noise: list[str | None] = [None] * 16
    for rule in (CertaindexRule(0.5), BetaRule(0.9), DirichletRule(0.9)):
        assert stop_point(rule, only_noise) is None
    # Four readable agreeing answers among unreadable ones: Beta stops, certaindex
    # (which counts each unreadable sample as its own answer) does not.
    mixed = ["7", None, "7", None, "7", None, "7", None]
    assert stop_point(BetaRule(0.95), mixed) == 7
    assert stop_point(CertaindexRule(0.7), mixed) is None


def test_rules_from_spec_and_gang_sizes() -> None:
    assert isinstance(rule_from_spec(None), NeverStop)
    assert isinstance(rule_from_spec(NoStop()), NeverStop)
    assert rule_from_spec(CertaindexStop(threshold=0.8, first_check=6)) == CertaindexRule(0.8, 6)
    assert rule_from_spec(BetaStop(confidence=0.9)) == BetaRule(0.9)
    assert rule_from_spec(DirichletStop()) == DirichletRule(0.95)
    assert first_check_of(CertaindexRule(0.8, first_check=1)) == 2
    assert first_check_of(BetaRule(0.95)) == 4
    assert first_check_of(BetaRule(0.99)) == 6
    assert first_check_of(NeverStop()) == 1


def test_early_stop_spec_parses_by_rule_and_refuses_other_rules_options() -> None:
    node = LLMNode(prompt="q", n=8, early_stop={"rule": "dirichlet", "confidence": 0.9})
    assert isinstance(node.early_stop, DirichletStop) and node.early_stop.confidence == 0.9
    with pytest.raises(ValueError, match="threshold"):
        LLMNode(prompt="q", n=8, early_stop={"rule": "beta", "threshold": 0.5})
