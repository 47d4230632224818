"""Certaindex and the Adaptive-Consistency posteriors on known tallies."""

from __future__ import annotations

import math

import pytest

from taskloom.orchestrator.certainty.measures import (
    beta_confidence,
    certaindex,
    dirichlet_confidence,
)
from taskloom.orchestrator.certainty.tally import VoteTally


def test_certaindex_is_one_when_all_agree_and_zero_when_all_differ() -> None:
    assert certaindex(VoteTally.from_counts([6])) == 1.0
    assert certaindex(VoteTally.from_counts([1, 1, 1, 1])) == pytest.approx(0.0)


def test_certaindex_matches_one_minus_normalized_entropy() -> None:
    # 3 of one answer, 1 of another: H = 0.811 bits over log2(4) = 2 bits.
    h = -(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25))
    assert certaindex(VoteTally.from_counts([3, 1])) == pytest.approx(1 - h / 2)


def test_certainty_on_ties() -> None:
    tie = VoteTally.from_counts([2, 2])
    assert certaindex(tie) == pytest.approx(0.5)
    assert beta_confidence(tie) == pytest.approx(0.5)
    assert dirichlet_confidence(tie) < 0.5  # the unseen category takes a little
    # A 3-way tie is less certain than a 2-way tie of the same size.
    assert certaindex(VoteTally.from_counts([2, 2, 2])) < certaindex(VoteTally.from_counts([3, 3]))
    # The leader of a tie is the answer seen first, every time.
    assert VoteTally.of(["b", "a", "a", "b"]).leader == "b"
    assert VoteTally.of(["b", "a", "a", "b"]).is_tied


def test_a_single_sample_says_nothing_about_agreement() -> None:
    one = VoteTally.of(["7"])
    assert certaindex(one) == 0.0
    assert beta_confidence(one) == pytest.approx(0.75)  # Beta(2, 1) above one half
    assert one.leader == "7" and not one.is_tied


def test_unparsed_samples_lower_certaindex_and_are_no_evidence_for_beta() -> None:
    clean = VoteTally.from_counts([4])
    noisy = VoteTally.from_counts([4], unparsed=4)
    assert certaindex(noisy) < certaindex(clean)
    assert beta_confidence(noisy) == beta_confidence(clean)
    assert noisy.samples == 8 and noisy.parsed == 4


def test_only_unparsed_samples_give_no_leader_and_no_confidence() -> None:
    empty = VoteTally.of([None, None, None])
    assert empty.leader is None and empty.is_tied
    assert certaindex(empty) == pytest.approx(0.0)
    assert beta_confidence(empty) == 0.0 and dirichlet_confidence(empty) == 0.0


@pytest.mark.parametrize(
    ("counts", "expected"),
    [([3], 15 / 16), ([4], 31 / 32), ([5, 1], 0.9375), ([10, 3], 0.9713)],
)
def test_beta_confidence_known_values(counts: list[int], expected: float) -> None:
    # P(Beta(a, b) > 1/2) = P(Binomial(a + b - 1, 1/2) < a).
    assert beta_confidence(VoteTally.from_counts(counts)) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize(
    ("counts", "expected"),
    # Monte Carlo with 200,000 draws of the same Dirichlet, to three decimals.
    [([4], 0.968), ([5, 1], 0.925), ([4, 1, 1], 0.798), ([8, 2, 2, 1], 0.931)],
)
def test_dirichlet_confidence_matches_monte_carlo(counts: list[int], expected: float) -> None:
    assert dirichlet_confidence(VoteTally.from_counts(counts)) == pytest.approx(expected, abs=2e-3)


def test_dirichlet_is_never_above_beta() -> None:
    for counts in ([5, 1], [4, 1, 1], [9, 3, 3, 2], [20, 10, 9]):
        tally = VoteTally.from_counts(counts)
        assert dirichlet_confidence(tally) <= beta_confidence(tally) + 1e-9
