"""How settled a vote is: certaindex, and the Adaptive-Consistency posteriors.

- `certaindex`: 1 - H / log(n), the entropy H of the answer distribution over n samples,
  normalized by its largest possible value (every sample a different answer). 1 when all
  samples agree, 0 when all differ. A sample whose answer could not be read counts as an
  answer of its own, so unreadable samples lower certainty.
- `beta_confidence`: the posterior probability, under a uniform prior, that the leading
  answer is more likely than the runner-up, looking at those two answers only.
- `dirichlet_confidence`: the posterior probability that the leading answer is the most
  likely of all answers, under a uniform Dirichlet prior over the answers seen plus one
  category for answers not seen yet (without it, a single answer seen once would be
  certain).

Beta and Dirichlet ignore unreadable samples: they are evidence for no answer.
"""

from __future__ import annotations

import math

from taskloom.orchestrator.certainty.tally import VoteTally


def certaindex(tally: VoteTally) -> float:
    samples = tally.samples
    if samples < 2:
        return 0.0  # one vote says nothing about agreement
    sizes = [count for _, count in tally.counts] + [1] * tally.unparsed
    entropy = -sum(size / samples * math.log(size / samples) for size in sizes)
    return max(0.0, 1.0 - entropy / math.log(samples))


def beta_confidence(tally: VoteTally) -> float:
    """P(p_leader > p_runner_up | votes) with Beta(leader + 1, runner_up + 1)."""
    ranked = tally.ranked()
    if not ranked:
        return 0.0
    leader, runner_up = ranked[0], (ranked[1] if len(ranked) > 1 else 0)
    return _beta_above_half(leader + 1, runner_up + 1)


def _beta_above_half(a: int, b: int) -> float:
    """P(X > 1/2) for X ~ Beta(a, b) with integer a, b: the chance that fewer than `a`
    of a + b - 1 fair coin flips come up heads (the Beta-binomial identity)."""
    flips = a + b - 1
    below = sum(math.comb(flips, heads) for heads in range(a))
    return float(below / 2**flips)


_GRID_POINTS = 4001


def dirichlet_confidence(tally: VoteTally) -> float:
    """P(p_leader > every other p | votes) with Dirichlet(counts + 1, 1)."""
    ranked = tally.ranked()
    if not ranked:
        return 0.0
    shapes = [count + 1 for count in ranked] + [1]  # the last: answers not seen yet
    return _gamma_leader_wins(shapes[0], shapes[1:])


def _gamma_leader_wins(leader: int, others: list[int]) -> float:
    """P(G_0 > max_j G_j) for independent G ~ Gamma(shape, 1) with integer shapes.

    A Dirichlet vector is a vector of such Gammas divided by their sum, so this is the
    chance the leader's share is the largest. It is the integral over g of the leader's
    density times every other Gamma's CDF at g, done on a grid; an integer-shape Gamma
    CDF at g is P(Poisson(g) >= shape).
    """
    import numpy as np  # only this rule needs it; keeps `import taskloom` light

    top = leader + 12.0 * math.sqrt(leader) + 40.0  # the density is negligible beyond
    g = np.linspace(0.0, top, _GRID_POINTS)[1:]
    log_g = np.log(g)
    density = np.exp((leader - 1) * log_g - g - math.lgamma(leader))
    largest = max(others)
    k = np.arange(largest)
    log_terms = np.outer(log_g, k) - g[:, None] - np.array([math.lgamma(i + 1) for i in k])
    poisson_below = np.cumsum(np.exp(log_terms), axis=1)  # column s-1: P(Poisson(g) < s)
    product = np.ones_like(g)
    for shape in others:
        product *= np.clip(1.0 - poisson_below[:, shape - 1], 0.0, 1.0)
    step = g[1] - g[0]
    return float(min(1.0, np.sum(density * product) * step))
