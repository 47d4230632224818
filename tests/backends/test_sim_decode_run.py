"""Decode-only runs applied at once equal the same steps scheduled one by one."""

from __future__ import annotations

import random
from typing import Any

import pytest

from taskloom.backends.sim import SimEngine, SimEngineConfig, SimStats, StepCostModel
from taskloom.backends.sim.request import SimRequest

COST = StepCostModel(base_s=1e-3, prefill_token_s=1e-5, decode_seq_s=1e-4, context_token_s=1e-7)


def make_engine(**overrides: Any) -> SimEngine:
    options: dict[str, Any] = {
        "max_num_seqs": 6,
        "num_kv_blocks": 40,
        "block_size": 4,
        "max_num_batched_tokens": 32,
        "enable_prefix_caching": True,
    }
    options.update(overrides)
    return SimEngine(SimEngineConfig(**options), COST)


def snapshot(engine: SimEngine, requests: list[SimRequest]) -> tuple[Any, ...]:
    """Everything a later step can depend on, block ids and eviction order included."""
    kv = engine.kv
    return (
        [
            (r.status, r.tokens, r.num_output_tokens, r.num_computed_tokens,
             [b.block_id for b in r.blocks], r.num_remembered_blocks, r.num_preemptions)
            for r in requests
        ],
        [r.request_id for r in engine.running],
        # The pool's private order is what decides which cached block is evicted next.
        list(kv._free),
        {block_hash: block.block_id for block_hash, block in kv._cached.items()},
        [(b.block_id, b.ref_count, b.block_hash) for b in kv._free.values()],
        engine.stats(),
    )


def submit_both(engines: tuple[SimEngine, SimEngine], rng: random.Random,
                requests: tuple[list[SimRequest], list[SimRequest]]) -> None:
    # Shared system prefix, a few identical prompts (twins that compute the same blocks),
    # output lengths long enough for runs of many decode steps.
    prefix = list(range(rng.choice([0, 8, 9])))
    body = list(range(1000, 1000 + rng.randint(1, 10))) if rng.random() < 0.3 else [
        rng.randrange(10**6) for _ in range(rng.randint(1, 12))
    ]
    output = rng.randint(1, 40)
    copies = rng.choice([1, 1, 2])  # twins: the same prompt and length, side by side
    for engine, submitted in zip(engines, requests, strict=True):
        submitted.extend(engine.submit(prefix + body, output) for _ in range(copies))


def run_side_by_side(seed: int, caching: bool) -> tuple[int, SimStats]:
    """Random arrivals on two engines: one applies parts of decode runs at once, the
    other steps one by one; their states must agree after every step. Returns how many
    steps were applied at once and the final counters."""
    rng = random.Random(seed)
    bulk = make_engine(enable_prefix_caching=caching)
    single = make_engine(enable_prefix_caching=caching)
    requests: tuple[list[SimRequest], list[SimRequest]] = ([], [])
    bulk_steps = 0
    for _ in range(rng.randint(2, 8)):
        submit_both((bulk, single), rng, requests)
    for _round in range(400):
        if rng.random() < 0.08:
            submit_both((bulk, single), rng, requests)
        if not bulk.has_work:
            break
        horizon = bulk.decode_horizon(rng.choice([1_000, rng.randint(1, 12)]))
        if horizon >= 2:
            # Apply some of the run at once (never its last step), then one normal step.
            ahead = rng.randint(1, horizon - 1)
            seconds = bulk.decode_step_seconds(horizon)
            bulk.complete_decode_steps(seconds[:ahead])
            bulk_steps += ahead
            for step_seconds in seconds[:ahead]:
                plan = single.schedule()
                assert plan.batch.prefill_tokens == 0 and plan.seconds == step_seconds
                single.complete(plan)
        for engine in (bulk, single):
            engine.complete(engine.schedule())
        assert snapshot(bulk, requests[0]) == snapshot(single, requests[1])
    assert not bulk.has_work
    return bulk_steps, bulk.stats()


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("caching", [True, False])
def test_a_decode_run_applied_at_once_equals_the_steps_one_by_one(seed: int,
                                                                  caching: bool) -> None:
    bulk_steps, stats = run_side_by_side(seed, caching)
    assert bulk_steps > 0
    assert stats.finished_requests > 0


def test_the_side_by_side_runs_preempt_and_share_prefixes() -> None:
    runs = [run_side_by_side(seed, True)[1] for seed in range(12)]
    assert sum(stats.preemptions for stats in runs) > 0
    assert sum(stats.cached_prompt_tokens for stats in runs) > 0


def test_the_horizon_stops_before_a_step_that_would_preempt() -> None:
    # 2 requests, 4-token blocks, 5 blocks: each holds 2 blocks after its prompt (5
    # tokens); one block is free, so only the steps up to the next boundary are certain.
    engine = make_engine(num_kv_blocks=5, enable_prefix_caching=False)
    first = engine.submit(list(range(5)), 12)
    second = engine.submit(list(range(100, 105)), 12)
    engine.complete(engine.schedule())  # both prefilled; each has its first token
    assert first.num_computed_tokens == second.num_computed_tokens == 5
    assert engine.kv.num_free_blocks == 1
    # Steps 1-3 fill both second blocks (computed 6..8); step 4 needs a third block for
    # each of the two requests but only one is free.
    assert engine.decode_horizon(100) == 3
    engine.complete_decode_steps(engine.decode_step_seconds(3)[:2])
    assert engine.decode_horizon(100) == 1


def test_the_horizon_ends_at_the_first_finish_and_waits_for_admissions() -> None:
    engine = make_engine(max_num_seqs=2)
    short = engine.submit(list(range(3)), 4)
    engine.submit(list(range(50, 53)), 20)
    engine.complete(engine.schedule())
    assert engine.decode_horizon(100) == 3  # the short one finishes in the third step
    assert engine.decode_horizon(2) == 2
    engine.submit(list(range(90, 93)), 5)  # no free slot: it cannot be admitted anyway
    assert engine.decode_horizon(100) == 3
    engine.complete_decode_steps(engine.decode_step_seconds(3)[:2])
    engine.complete(engine.schedule())
    assert short.num_output_tokens == 4
    # A slot is free now, so the next step admits the waiting request: no promise.
    assert engine.decode_horizon(100) == 0


def test_a_run_that_would_finish_a_request_early_is_refused() -> None:
    engine = make_engine()
    engine.submit(list(range(3)), 3)
    engine.complete(engine.schedule())
    with pytest.raises(RuntimeError, match="last step"):
        engine.complete_decode_steps(engine.decode_step_seconds(2))
