"""The step cost model, its fit from measurements, and the shipped H100 profile."""

from __future__ import annotations

import random

import pytest

from taskloom.backends.sim import (
    H100_LLAMA3_8B,
    H100_LLAMA3_8B_ENGINE,
    CostSample,
    StepBatch,
    StepCostModel,
    fit_cost_model,
)


def test_step_time_is_linear_in_the_batch() -> None:
    model = StepCostModel(base_s=0.5, prefill_token_s=0.01, decode_seq_s=0.1, context_token_s=0.001)
    batch = StepBatch(prefill_tokens=100, decode_seqs=3, context_tokens=1000)
    assert model.step_time(batch) == pytest.approx(0.5 + 1.0 + 0.3 + 1.0)


def test_fit_recovers_the_coefficients_of_exact_samples() -> None:
    truth = StepCostModel(
        base_s=0.006, prefill_token_s=4e-5, decode_seq_s=5e-5, context_token_s=5e-8
    )
    rng = random.Random(1)
    samples = []
    for _ in range(50):
        batch = StepBatch(rng.randint(0, 8192), rng.randint(0, 256), rng.randint(0, 400_000))
        samples.append(CostSample(*_as_tuple(batch), truth.step_time(batch)))
    fitted = fit_cost_model(samples)
    assert fitted.base_s == pytest.approx(truth.base_s, rel=1e-6)
    assert fitted.prefill_token_s == pytest.approx(truth.prefill_token_s, rel=1e-6)
    assert fitted.decode_seq_s == pytest.approx(truth.decode_seq_s, rel=1e-6)
    assert fitted.context_token_s == pytest.approx(truth.context_token_s, rel=1e-6)


def test_fit_tolerates_noise_and_accepts_plain_tuples() -> None:
    rng = random.Random(2)
    rows = []
    for _ in range(400):
        prefill, decode = rng.randint(0, 4096), rng.randint(1, 128)
        seconds = 0.01 + 2e-5 * prefill + 1e-4 * decode + rng.gauss(0, 1e-4)
        rows.append((prefill, decode, 0, seconds))
    fitted = fit_cost_model(rows)
    assert fitted.base_s == pytest.approx(0.01, rel=0.05)
    assert fitted.prefill_token_s == pytest.approx(2e-5, rel=0.02)
    assert fitted.decode_seq_s == pytest.approx(1e-4, rel=0.05)
    assert fitted.context_token_s == 0.0  # never varied, so not fitted


def test_fit_never_returns_a_negative_cost() -> None:
    # Steps that get faster with more decodes would need a negative decode cost.
    rows = [(0, decode, 0, 0.02 - 1e-4 * decode) for decode in range(1, 50)]
    fitted = fit_cost_model(rows)
    assert min(fitted.base_s, fitted.prefill_token_s, fitted.decode_seq_s) >= 0
    assert fitted.decode_seq_s == 0.0
    assert fitted.base_s == pytest.approx(sum(r[3] for r in rows) / len(rows))


def test_fit_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fit_cost_model([])
    with pytest.raises(ValueError, match="4 fields"):
        fit_cost_model([(1, 2, 3)])


def test_h100_profile_matches_the_public_figures_it_cites() -> None:
    decode_floor = H100_LLAMA3_8B.step_time(StepBatch(decode_seqs=1, context_tokens=1))
    assert 0.005 < decode_floor < 0.007  # 16 GB of weights at ~3.35 TB/s
    prefill_rate = 1 / H100_LLAMA3_8B.prefill_token_s
    assert 10_000 < prefill_rate < 50_000
    kv_tokens = H100_LLAMA3_8B_ENGINE.kv_capacity_tokens
    assert 300_000 < kv_tokens < 600_000  # ~50 GB of 128 KiB/token KV cache


def _as_tuple(batch: StepBatch) -> tuple[int, int, int]:
    return batch.prefill_tokens, batch.decode_seqs, batch.context_tokens
