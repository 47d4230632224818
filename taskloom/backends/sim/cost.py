"""How long one engine step takes, and how to fit that from measurements.

A step of a continuous-batching engine runs one forward pass over a mixed batch: chunks
of prompts being prefilled and one token for each sequence being decoded. Its time is
modelled as linear in what the batch holds:

    step_s = base_s + prefill_token_s * prefill_tokens + decode_seq_s * decode_seqs
             + context_token_s * context_tokens

`base_s` is what every step pays (reading the weights once), the token terms are the
matrix work, and `context_tokens` (every scheduled sequence's length so far) stands for
attention reading the KV cache.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

_TERMS = 4  # base, prefill tokens, decode seqs, context tokens


@dataclass(frozen=True)
class StepBatch:
    """What one step computes: the inputs of the cost model."""

    prefill_tokens: int = 0
    decode_seqs: int = 0
    context_tokens: int = 0

    @property
    def is_empty(self) -> bool:
        return self.prefill_tokens == 0 and self.decode_seqs == 0


@dataclass(frozen=True)
class StepCostModel:
    """Seconds per step as a linear function of a `StepBatch`."""

    base_s: float
    prefill_token_s: float
    decode_seq_s: float
    context_token_s: float

    def step_time(self, batch: StepBatch) -> float:
        return (
            self.base_s
            + self.prefill_token_s * batch.prefill_tokens
            + self.decode_seq_s * batch.decode_seqs
            + self.context_token_s * batch.context_tokens
        )


class CostSample(NamedTuple):
    """One measured step. A plain 4-tuple in this order works as well."""

    prefill_tokens: float
    decode_seqs: float
    context_tokens: float
    seconds: float


def fit_cost_model(samples: Iterable[Sequence[float]]) -> StepCostModel:
    """Least-squares fit of a `StepCostModel` with no negative coefficient.

    `samples` are (prefill_tokens, decode_seqs, context_tokens, seconds) rows. A negative
    cost would let a bigger batch run faster, so the fit is non-negative least squares:
    with four terms it is exact and cheap to try every subset of terms, fit each by the
    normal equations, and keep the best fit whose coefficients are all non-negative.
    Terms that never vary in the samples get 0.
    """
    rows = [_design_row(sample) for sample in samples]
    if not rows:
        raise ValueError("fit_cost_model needs at least one measured step")
    best: tuple[float, list[float]] | None = None
    for support in _supports():
        coefficients = _fit_on(rows, support)
        if coefficients is None or min(coefficients) < 0:
            continue
        error = _squared_error(rows, coefficients)
        if best is None or error < best[0]:
            best = (error, coefficients)
    if best is None:
        raise ValueError("no non-negative cost model fits these samples")
    return StepCostModel(*best[1])


_Row = tuple[list[float], float]


def _design_row(sample: Sequence[float]) -> _Row:
    if len(sample) != _TERMS:
        raise ValueError(f"a cost sample has 4 fields, got {len(sample)}: {sample!r}")
    prefill, decode, context, seconds = (float(value) for value in sample)
    return [1.0, prefill, decode, context], seconds


def _supports() -> Iterable[tuple[int, ...]]:
    # Smaller supports first, so among equally good fits the simplest one wins.
    for size in range(1, _TERMS + 1):
        yield from itertools.combinations(range(_TERMS), size)


def _fit_on(rows: list[_Row], support: tuple[int, ...]) -> list[float] | None:
    """Least squares on the columns in `support`; None when they are degenerate."""
    scales = [max((abs(x[j]) for x, _ in rows), default=0.0) for j in support]
    if min(scales) == 0.0:
        return None
    # Columns span 1 to ~1e5 tokens; scaling each to max 1 keeps the normal equations
    # well conditioned.
    columns = [[x[j] / scale for j, scale in zip(support, scales, strict=True)] for x, _ in rows]
    targets = [y for _, y in rows]
    solved = _solve(*_normal_equations(columns, targets))
    if solved is None:
        return None
    full = [0.0] * _TERMS
    for j, scale, value in zip(support, scales, solved, strict=True):
        full[j] = value / scale
    return full


def _normal_equations(
    columns: list[list[float]], targets: list[float]
) -> tuple[list[list[float]], list[float]]:
    width = len(columns[0])
    gram = [[sum(x[i] * x[j] for x in columns) for j in range(width)] for i in range(width)]
    moment = [sum(x[i] * y for x, y in zip(columns, targets, strict=True)) for i in range(width)]
    return gram, moment


def _solve(matrix: list[list[float]], rhs: list[float]) -> list[float] | None:
    """Gaussian elimination with partial pivoting; None for a singular system."""
    size = len(rhs)
    augmented = [[*row, value] for row, value in zip(matrix, rhs, strict=True)]
    tolerance = 1e-10 * max(abs(matrix[i][i]) for i in range(size))
    for col in range(size):
        pivot = max(range(col, size), key=lambda r: abs(augmented[r][col]))
        if abs(augmented[pivot][col]) <= tolerance:
            return None
        augmented[col], augmented[pivot] = augmented[pivot], augmented[col]
        _eliminate_below(augmented, col)
    return _back_substitute(augmented)


def _eliminate_below(augmented: list[list[float]], col: int) -> None:
    for row in range(col + 1, len(augmented)):
        factor = augmented[row][col] / augmented[col][col]
        for k in range(col, len(augmented[row])):
            augmented[row][k] -= factor * augmented[col][k]


def _back_substitute(augmented: list[list[float]]) -> list[float]:
    size = len(augmented)
    solution = [0.0] * size
    for row in reversed(range(size)):
        known = sum(augmented[row][k] * solution[k] for k in range(row + 1, size))
        solution[row] = (augmented[row][size] - known) / augmented[row][row]
    return solution


def _squared_error(rows: list[_Row], coefficients: list[float]) -> float:
    return sum((sum(c * v for c, v in zip(coefficients, x, strict=True)) - y) ** 2 for x, y in rows)
