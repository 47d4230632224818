"""Stopping rules: pure functions of a vote tally that say "enough samples".

No rule stops on a tie: a vote cannot be decided while two answers share the top count,
whatever the certainty (a 32-32 split of 64 samples has a certaindex of 0.83).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from taskloom.orchestrator.certainty.measures import (
    beta_confidence,
    certaindex,
    dirichlet_confidence,
)
from taskloom.orchestrator.certainty.tally import VoteTally
from taskloom.program.models import (
    BetaStop,
    CertaindexStop,
    DirichletStop,
    EarlyStopSpec,
    NoStop,
)


class StoppingRule(Protocol):
    @property
    def name(self) -> str: ...

    def should_stop(self, tally: VoteTally) -> bool:
        """True once the vote is settled enough to stop sampling."""
        ...


@dataclass(frozen=True)
class CertaindexRule:
    """Stop when certaindex >= `threshold`, from the `first_check`-th sample on."""

    threshold: float
    first_check: int = 4
    name: str = "certaindex"

    def should_stop(self, tally: VoteTally) -> bool:
        if tally.samples < self.first_check or tally.is_tied:
            return False
        return certaindex(tally) >= self.threshold


@dataclass(frozen=True)
class BetaRule:
    """Adaptive-Consistency's Beta rule: leader beats runner-up with `confidence`."""

    confidence: float = 0.95
    name: str = "beta"

    def should_stop(self, tally: VoteTally) -> bool:
        return not tally.is_tied and beta_confidence(tally) >= self.confidence


@dataclass(frozen=True)
class DirichletRule:
    """Adaptive-Consistency's Dirichlet rule: leader is the most likely answer with
    `confidence`."""

    confidence: float = 0.95
    name: str = "dirichlet"

    def should_stop(self, tally: VoteTally) -> bool:
        if tally.is_tied:
            return False
        # The Beta posterior of the top two bounds the Dirichlet one from above, and
        # costs far less: most checks end here.
        if beta_confidence(tally) < self.confidence:
            return False
        return dirichlet_confidence(tally) >= self.confidence


@dataclass(frozen=True)
class NeverStop:
    name: str = "none"

    def should_stop(self, tally: VoteTally) -> bool:
        return False


def rule_from_spec(spec: EarlyStopSpec | None) -> StoppingRule:
    if spec is None or isinstance(spec, NoStop):
        return NeverStop()
    if isinstance(spec, CertaindexStop):
        return CertaindexRule(spec.threshold, spec.first_check)
    if isinstance(spec, BetaStop):
        return BetaRule(spec.confidence)
    assert isinstance(spec, DirichletStop)
    return DirichletRule(spec.confidence)


def first_check_of(rule: StoppingRule) -> int:
    """The fewest samples after which a rule can fire: the natural size of a gang."""
    if isinstance(rule, CertaindexRule):
        return max(2, rule.first_check)  # certaindex is 0 for a single sample
    if isinstance(rule, BetaRule | DirichletRule):
        # k unanimous votes give 1 - 2^-(k+1) under both rules.
        return max(1, math.ceil(math.log2(1.0 / (1.0 - rule.confidence))) - 1)
    return 1
