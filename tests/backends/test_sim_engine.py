"""The simulated scheduler as a pure state machine: step by step, no event loop."""

from __future__ import annotations

import pytest

from taskloom.backends.sim import SimEngine, SimEngineConfig, StepBatch, StepCostModel, StepPlan
from taskloom.backends.sim.request import RequestStatus, SimRequest
from taskloom.errors import BackendError

# Round numbers so that step times can be computed by hand.
COST = StepCostModel(base_s=1.0, prefill_token_s=0.01, decode_seq_s=0.1, context_token_s=0.001)


def make_engine(**overrides: object) -> SimEngine:
    options: dict[str, object] = {
        "max_num_seqs": 8,
        "num_kv_blocks": 64,
        "block_size": 4,
        "max_num_batched_tokens": 64,
        "enable_prefix_caching": False,
    }
    options.update(overrides)
    return SimEngine(SimEngineConfig(**options), COST)  # type: ignore[arg-type]


def tokens(count: int, start: int = 0) -> list[int]:
    return list(range(start, start + count))


def step(engine: SimEngine) -> tuple[StepPlan, list[SimRequest]]:
    plan = engine.schedule()
    return plan, engine.complete(plan)


def run_all(engine: SimEngine, limit: int = 10_000) -> list[StepPlan]:
    plans: list[StepPlan] = []
    while engine.has_work and len(plans) < limit:
        plans.append(step(engine)[0])
    assert not engine.has_work, "engine did not drain"
    return plans


def finish_order(engine: SimEngine, requests: list[SimRequest]) -> list[int]:
    order: list[int] = []
    while engine.has_work:
        step(engine)
        for request in requests:
            if request.status is RequestStatus.FINISHED and request.request_id not in order:
                order.append(request.request_id)
    return order


def test_two_requests_are_batched_prefill_then_decode() -> None:
    engine = make_engine()
    a = engine.submit(tokens(5), output_tokens=3)
    b = engine.submit(tokens(5, start=100), output_tokens=3)
    plans = run_all(engine)
    assert [p.batch for p in plans] == [
        StepBatch(prefill_tokens=10, decode_seqs=0, context_tokens=10),
        StepBatch(prefill_tokens=0, decode_seqs=2, context_tokens=12),
        StepBatch(prefill_tokens=0, decode_seqs=2, context_tokens=14),
    ]
    assert [p.seconds for p in plans] == pytest.approx([1.11, 1.212, 1.214])
    assert a.num_output_tokens == b.num_output_tokens == 3
    assert engine.stats().generated_tokens == 6
    assert engine.stats().busy_s == pytest.approx(3.536)


def test_max_num_seqs_limits_admission() -> None:
    engine = make_engine(max_num_seqs=2)
    requests = [engine.submit(tokens(3, start=10 * i), output_tokens=2) for i in range(5)]
    plan, _ = step(engine)
    assert [w.request for w in plan.work] == requests[:2]
    assert len(engine.running) == 2 and len(engine.waiting) == 3
    run_all(engine)
    assert engine.stats().peak_running == 2
    assert all(r.status is RequestStatus.FINISHED for r in requests)


def test_long_prompt_is_prefilled_in_chunks_within_the_token_budget() -> None:
    engine = make_engine(max_num_batched_tokens=8)
    engine.submit(tokens(20), output_tokens=1)
    plans = run_all(engine)
    assert [p.batch.prefill_tokens for p in plans] == [8, 8, 4]
    # Context grows with each chunk: attention reads what is already computed.
    assert [p.batch.context_tokens for p in plans] == [8, 16, 20]


def test_decodes_are_scheduled_before_new_prefills_share_the_budget() -> None:
    engine = make_engine(max_num_batched_tokens=6)
    first = engine.submit(tokens(4), output_tokens=3)
    step(engine)  # prefill of the first request
    engine.submit(tokens(10, start=50), output_tokens=1)
    plan, _ = step(engine)
    assert plan.work[0].request is first and plan.work[0].is_decode
    assert plan.work[1].num_tokens == 5  # the rest of the budget goes to the new prompt


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("fcfs", ["blocker", "p2", "p0", "p1"]), ("priority", ["blocker", "p0", "p1", "p2"])],
)
def test_waiting_queue_order_follows_the_policy(policy: str, expected: list[str]) -> None:
    engine = make_engine(max_num_seqs=1, policy=policy)
    names = {}
    blocker = engine.submit(tokens(4), output_tokens=3, priority=10)
    names[blocker.request_id] = "blocker"
    step(engine)  # the blocker runs; a lower value arriving later does not evict it
    later = []
    for priority in (2, 0, 1):
        request = engine.submit(tokens(4, start=10 * priority + 10), 2, priority=priority)
        names[request.request_id] = f"p{priority}"
        later.append(request)
    order = finish_order(engine, [blocker, *later])
    assert [names[i] for i in order] == expected


def test_prefix_cache_skips_the_shared_full_blocks() -> None:
    engine = make_engine(enable_prefix_caching=True)
    first = engine.submit(tokens(10), output_tokens=1)
    run_all(engine)
    second = engine.submit([*tokens(10), 99, 98], output_tokens=1)
    plan, _ = step(engine)
    # Two full blocks (8 tokens) are shared; the rest of the prompt is computed.
    assert second.cached_prompt_tokens == 8
    assert plan.batch.prefill_tokens == 4
    assert first.cached_prompt_tokens == 0
    assert engine.stats().cached_prompt_tokens == 8


def test_prefix_cache_never_skips_the_whole_prompt() -> None:
    engine = make_engine(enable_prefix_caching=True)
    engine.submit(tokens(8), output_tokens=2)
    run_all(engine)
    again = engine.submit(tokens(8), output_tokens=1)
    plan, _ = step(engine)
    # 8 tokens are cached but the last one is recomputed to produce logits.
    assert again.cached_prompt_tokens == 4
    assert plan.batch.prefill_tokens == 4


def test_least_recently_freed_cached_blocks_are_evicted_first() -> None:
    engine = make_engine(enable_prefix_caching=True, num_kv_blocks=6)
    for start in (0, 100):  # X then Y: 3 blocks each, 2 of them full and cached
        engine.submit(tokens(9, start=start), output_tokens=1)
        run_all(engine)
    engine.submit(tokens(9, start=200), output_tokens=1)  # Z takes 3 of the 6 blocks
    run_all(engine)
    y_again = engine.submit(tokens(9, start=100), output_tokens=1)
    x_again = engine.submit(tokens(9), output_tokens=1)
    step(engine)
    assert x_again.cached_prompt_tokens == 0  # X was freed first, so evicted first
    assert y_again.cached_prompt_tokens == 8


def test_a_requests_tail_blocks_are_evicted_before_its_prefix() -> None:
    engine = make_engine(enable_prefix_caching=True, num_kv_blocks=4)
    engine.submit(tokens(9), output_tokens=1)  # caches 2 full blocks
    run_all(engine)
    engine.submit(tokens(9, start=200), output_tokens=1)  # needs 3 of the 4 blocks
    run_all(engine)
    again = engine.submit(tokens(9), output_tokens=1)
    step(engine)
    # Its second block was evicted, its first (the likelier shared prefix) survived.
    assert again.cached_prompt_tokens == 4


def test_out_of_kv_blocks_preempts_the_latest_request_by_recompute() -> None:
    engine = make_engine(num_kv_blocks=6)
    a = engine.submit(tokens(4), output_tokens=12)
    b = engine.submit(tokens(4, start=100), output_tokens=12)
    plans = run_all(engine)
    stats = engine.stats()
    assert stats.preemptions >= 1
    assert b.num_preemptions >= 1 and a.num_preemptions == 0
    assert a.num_output_tokens == b.num_output_tokens == 12
    assert stats.generated_tokens == 24
    # B's generated tokens were recomputed as prompt: more prefill than the two prompts.
    assert stats.prefill_tokens > 8
    assert all(len({id(w.request) for w in p.work}) == len(p.work) for p in plans)
    assert engine.kv.num_free_blocks == 6


def test_priority_policy_preempts_the_lowest_priority_running_request() -> None:
    engine = make_engine(num_kv_blocks=6, policy="priority")
    low = engine.submit(tokens(4), output_tokens=12, priority=5)
    high = engine.submit(tokens(4, start=100), output_tokens=12, priority=0)
    run_all(engine)
    assert low.num_preemptions >= 1 and high.num_preemptions == 0
    assert low.num_output_tokens == high.num_output_tokens == 12


def test_abort_frees_blocks_and_leaves_the_queues() -> None:
    engine = make_engine(max_num_seqs=1)
    running = engine.submit(tokens(6), output_tokens=5)
    waiting = engine.submit(tokens(6, start=50), output_tokens=5)
    step(engine)
    engine.abort(running)
    engine.abort(waiting)
    assert not engine.has_work
    assert engine.kv.num_free_blocks == 64
    assert engine.stats().aborted_requests == 2
    engine.abort(running)  # aborting twice is harmless
    assert engine.stats().aborted_requests == 2


def test_abort_during_a_step_discards_its_result() -> None:
    engine = make_engine()
    request = engine.submit(tokens(4), output_tokens=3)
    plan = engine.schedule()
    engine.abort(request)
    assert engine.complete(plan) == []
    assert request.num_output_tokens == 0


def test_a_request_that_cannot_fit_alone_is_rejected() -> None:
    engine = make_engine(num_kv_blocks=2)  # 8 tokens
    with pytest.raises(BackendError, match="KV cache"):
        engine.submit(tokens(6), output_tokens=4)
    engine.submit(tokens(6), output_tokens=3)  # 6 + 3 - 1 = 8 tokens fits
