"""`SimBackend` on virtual time (trio + MockClock) and, where cheap, on asyncio."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import pytest
from trio.testing import MockClock

from taskloom.backends.base import (
    Backend,
    Chunk,
    GenerateRequest,
    Message,
    SamplingParams,
    collect,
)
from taskloom.backends.sim import (
    FILLER_TEXT,
    H100_LLAMA3_8B,
    SimBackend,
    SimEngineConfig,
    SimStats,
    StepBatch,
    StepCostModel,
    request_tokens,
)
from taskloom.errors import BackendError

T = TypeVar("T")

COST = StepCostModel(base_s=1.0, prefill_token_s=0.01, decode_seq_s=0.1, context_token_s=0.001)
SMALL = SimEngineConfig(
    max_num_seqs=8,
    num_kv_blocks=64,
    block_size=4,
    max_num_batched_tokens=64,
    enable_prefix_caching=False,
)


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    clock = MockClock(autojump_threshold=0)
    return anyio.run(main, backend="trio", backend_options={"clock": clock})


def words(count: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(count))


def prompt_request(
    call_id: str, prompt: str, max_tokens: int, priority: int = 0
) -> GenerateRequest:
    sampling = SamplingParams(max_tokens=max_tokens)
    return GenerateRequest(call_id=call_id, prompt=prompt, sampling=sampling, priority=priority)


async def timed(backend: SimBackend, request: GenerateRequest) -> tuple[float, list[Chunk]]:
    """Virtual seconds from submission to the last chunk, and the chunks."""
    start = anyio.current_time()
    chunks = [chunk async for chunk in backend.generate(request)]
    return anyio.current_time() - start, chunks


def test_sim_backend_satisfies_the_backend_protocol() -> None:
    backend = SimBackend(SMALL, COST)
    assert isinstance(backend, Backend)
    assert backend.name == "sim"
    assert backend.capacity() == 8


def test_two_requests_batch_and_finish_at_the_hand_computed_time() -> None:
    async def main() -> list[tuple[float, list[Chunk]]]:
        results: list[tuple[float, list[Chunk]]] = []
        async with SimBackend(SMALL, COST) as backend:

            async def one(call_id: str, prompt: str) -> None:
                results.append(await timed(backend, prompt_request(call_id, prompt, 3)))

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "a", "a b c d e")
                tg.start_soon(one, "b", "f g h i j")
        return results

    results = run_virtual(main)
    # Step 1 prefills 2 x 5 tokens; steps 2 and 3 decode both (context 12, then 14).
    expected = (1 + 0.01 * 10 + 0.001 * 10) + (1 + 0.1 * 2 + 0.001 * 12) + (1 + 0.2 + 0.014)
    for elapsed, chunks in results:
        assert elapsed == pytest.approx(expected)
        assert [c.generated_tokens for c in chunks] == [1, 2, 3]
        assert [c.finished for c in chunks] == [False, False, True]
        assert chunks[-1].prompt_tokens == 5
        assert chunks[-1].finish_reason == "length"
        assert "".join(c.text for c in chunks) == FILLER_TEXT * 3


def test_max_num_seqs_one_serializes_the_requests() -> None:
    config = SimEngineConfig(max_num_seqs=1, num_kv_blocks=64, block_size=4)

    async def main() -> tuple[dict[str, float], SimStats]:
        finished_at: dict[str, float] = {}
        async with SimBackend(config, COST) as backend:

            async def one(call_id: str, prompt: str) -> None:
                await collect(backend.generate(prompt_request(call_id, prompt, 3)))
                finished_at[call_id] = anyio.current_time()

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "a", "a b c d e")
                tg.start_soon(one, "b", "f g h i j")
            return finished_at, backend.stats()

    finished_at, stats = run_virtual(main)
    one_request = (1 + 0.05 + 0.005) + (1 + 0.1 + 0.006) + (1 + 0.1 + 0.007)
    # Equal arrival times are ordered by call id, so "a" runs first, on every run.
    assert finished_at["a"] == pytest.approx(one_request)
    assert finished_at["b"] == pytest.approx(2 * one_request)
    assert stats.peak_running == 1 and stats.steps == 6


def test_priority_policy_orders_the_waiting_queue() -> None:
    config = SimEngineConfig(max_num_seqs=1, num_kv_blocks=64, block_size=4, policy="priority")

    async def main() -> list[str]:
        order: list[str] = []
        async with SimBackend(config, COST) as backend:

            async def one(call_id: str, priority: int, delay: float) -> None:
                await anyio.sleep(delay)
                request = prompt_request(call_id, f"{call_id} x y", 4, priority)
                await collect(backend.generate(request))
                order.append(call_id)

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "first", 9, 0.0)  # runs alone; never evicted
                for call_id, priority in (("late", 3), ("urgent", 0), ("normal", 1)):
                    tg.start_soon(one, call_id, priority, 0.5)
        return order

    assert run_virtual(main) == ["first", "urgent", "normal", "late"]


def test_second_call_with_the_same_prefix_hits_the_cache_and_runs_faster() -> None:
    config = SimEngineConfig(num_kv_blocks=64, block_size=4, enable_prefix_caching=True)
    shared = words(20)

    async def main() -> list[tuple[float, list[Chunk]]]:
        async with SimBackend(config, COST) as backend:
            first = await timed(backend, prompt_request("1", shared, 2))
            second = await timed(backend, prompt_request("2", shared + " x y", 2))
        return [first, second]

    (first_s, first), (second_s, second) = run_virtual(main)
    assert first[-1].cached_prompt_tokens == 0
    assert second[-1].cached_prompt_tokens == 20  # 5 full blocks of the 22-token prompt
    assert first_s == pytest.approx((1 + 0.2 + 0.02) + (1 + 0.1 + 0.021))
    assert second_s == pytest.approx((1 + 0.02 + 0.022) + (1 + 0.1 + 0.023))
    assert second_s < first_s


def test_follow_up_chat_call_reuses_the_blocks_of_the_earlier_answer() -> None:
    config = SimEngineConfig(num_kv_blocks=256, block_size=4, enable_prefix_caching=True)
    system = Message("system", "You are terse. " + words(10))
    question = Message("user", "What is the plan?")

    async def main() -> tuple[str, int]:
        async with SimBackend(config, COST) as backend:
            ask = GenerateRequest("ask", messages=(system, question))
            answer = await collect(backend.generate(ask))
            follow = (system, question, Message("assistant", answer.text), Message("user", "Go."))
            second = await collect(backend.generate(GenerateRequest("follow", messages=follow)))
            return answer.text, second.cached_prompt_tokens

    answer_text, cached = run_virtual(main)
    first_tokens = request_tokens(GenerateRequest("ask", messages=(system, question)))
    answer_tokens = answer_text.count(FILLER_TEXT)
    # Everything computed in the first call (its prompt and all answer tokens but the
    # last, which was never fed back) is reusable, rounded down to full blocks.
    assert cached == (len(first_tokens) + answer_tokens - 1) // 4 * 4
    assert cached > len(first_tokens)


def test_preempted_request_still_generates_its_full_output() -> None:
    config = SimEngineConfig(max_num_seqs=4, num_kv_blocks=6, block_size=4)

    async def main() -> tuple[list[list[Chunk]], SimStats]:
        results: list[list[Chunk]] = []
        async with SimBackend(config, COST) as backend:

            async def one(call_id: str, prompt: str) -> None:
                request = prompt_request(call_id, prompt, 12)
                results.append([c async for c in backend.generate(request)])

            async with anyio.create_task_group() as tg:
                tg.start_soon(one, "a", "a b c d")
                tg.start_soon(one, "b", "e f g h")
            return results, backend.stats()

    results, stats = run_virtual(main)
    assert stats.preemptions >= 1
    for chunks in results:
        assert [c.generated_tokens for c in chunks] == list(range(1, 13))
        assert "".join(c.text for c in chunks) == FILLER_TEXT * 12
    assert stats.generated_tokens == 24 and stats.finished_requests == 2


def test_output_length_function_replays_a_trace() -> None:
    lengths = {"short": 2, "long": 7}

    async def main() -> dict[str, tuple[int, str | None]]:
        backend = SimBackend(SMALL, COST, output_tokens=lambda r: lengths[r.call_id])
        async with backend:
            out = {}
            for call_id in lengths:
                done = await collect(backend.generate(prompt_request(call_id, "hello", 100)))
                out[call_id] = (done.generated_tokens, done.finish_reason)
            return out

    assert run_virtual(main) == {"short": (2, "stop"), "long": (7, "stop")}


def test_cancelling_the_consumer_removes_the_request_from_the_engine() -> None:
    async def main() -> tuple[int, SimStats, int, int]:
        async with SimBackend(SMALL, COST) as backend:
            seen = 0
            with anyio.CancelScope() as scope:
                async for _ in backend.generate(prompt_request("long", "a b c", 50)):
                    seen += 1
                    if seen == 3:
                        scope.cancel()
            await anyio.sleep(10)  # the engine would have produced more by now
            engine = backend.engine
            still_there = len(engine.running) + len(engine.waiting)
            after = await collect(backend.generate(prompt_request("next", "d e", 2)))
            return still_there, backend.stats(), engine.kv.num_free_blocks, after.generated_tokens

    still_there, stats, free_blocks, next_tokens = run_virtual(main)
    assert still_there == 0
    assert stats.aborted_requests == 1
    assert stats.generated_tokens == 3 + 2
    assert free_blocks == SMALL.num_kv_blocks
    assert next_tokens == 2


def test_cancelling_a_waiting_request_leaves_the_running_one_alone() -> None:
    config = SimEngineConfig(max_num_seqs=1, num_kv_blocks=64, block_size=4)

    async def main() -> tuple[int, SimStats]:
        async with SimBackend(config, COST) as backend:
            with anyio.move_on_after(0.5):  # "queued" never gets past the waiting queue
                async with anyio.create_task_group() as tg:
                    tg.start_soon(collect, backend.generate(prompt_request("queued", "b", 3)))
                    await anyio.sleep(0.1)
            waiting = len(backend.engine.waiting)
            await collect(backend.generate(prompt_request("solo", "a", 3)))
            return waiting, backend.stats()

    waiting, stats = run_virtual(main)
    assert waiting == 0
    assert stats.finished_requests == 1 and stats.aborted_requests == 1


def test_generate_before_start_and_after_close_raises_backend_error() -> None:
    async def main() -> list[str]:
        errors = []
        backend = SimBackend(SMALL, COST)
        with pytest.raises(BackendError, match="not open"):
            await collect(backend.generate(prompt_request("x", "a", 1)))
        async with backend:
            pass
        with pytest.raises(BackendError, match="closed"):
            await collect(backend.generate(prompt_request("y", "a", 1)))
        errors.append("ok")
        return errors

    assert run_virtual(main) == ["ok"]


def test_close_fails_the_requests_in_flight() -> None:
    async def main() -> int:
        chunks: list[Chunk] = []
        async with SimBackend(SMALL, COST) as backend:
            with pytest.raises(BackendError, match="closed"):
                async for chunk in backend.generate(prompt_request("x", "a b", 100)):
                    chunks.append(chunk)
                    if len(chunks) == 2:
                        await backend.close()
        return len(chunks)  # the block ended: close() stopped the engine loop

    assert run_virtual(main) == 2


def test_a_request_larger_than_the_kv_cache_is_rejected() -> None:
    async def main() -> None:
        async with SimBackend(SimEngineConfig(num_kv_blocks=2, block_size=4), COST) as backend:
            await collect(backend.generate(prompt_request("big", words(6), 10)))

    with pytest.raises(BackendError, match="KV cache"):
        run_virtual(main)


def test_an_arrival_at_the_instant_a_step_ends_joins_the_next_step() -> None:
    # Trio wakes tasks due at one instant in a random order; the engine must still see
    # the arrival before it schedules, on every run.
    first_step = COST.step_time(StepBatch(prefill_tokens=5, context_tokens=5))

    async def main() -> float:
        async with SimBackend(SMALL, COST) as backend:

            async def late() -> float:
                await anyio.sleep(first_step)  # the same deadline as the engine's step
                for _ in range(3):  # hops through a scheduler take no virtual time
                    await anyio.lowlevel.checkpoint()
                await collect(backend.generate(prompt_request("b", "f g h", 1)))
                return anyio.current_time()

            async with anyio.create_task_group() as tg:
                tg.start_soon(collect, backend.generate(prompt_request("a", "a b c d e", 5)))
                b_finished_at = await late()
        return b_finished_at

    # Step 2 prefills "b" (3 tokens) beside the decode of "a" (context 6 + 3).
    expected = first_step + COST.step_time(StepBatch(3, 1, 9))
    for _ in range(8):
        assert run_virtual(main) == pytest.approx(expected)


def _workload_run(seed: int) -> tuple[SimStats, list[tuple[str, float, int]]]:
    """Programs with shared prefixes, bursts of equal arrival times, priorities and a
    KV cache small enough to force preemptions."""
    config = SimEngineConfig(
        max_num_seqs=16,
        num_kv_blocks=60,
        block_size=8,
        max_num_batched_tokens=128,
        policy="priority",
    )
    rng = random.Random(seed)
    programs = [(rng.choice([0.0, 0.0, rng.uniform(0, 2)]), rng.randint(0, 3)) for _ in range(40)]

    async def main() -> tuple[SimStats, list[tuple[str, float, int]]]:
        finished: list[tuple[str, float, int]] = []
        async with SimBackend(config, H100_LLAMA3_8B) as backend:

            async def program(index: int, start: float, priority: int) -> None:
                await anyio.sleep(start)
                context = words(30, prefix=f"p{index}s")  # private: fills the KV cache
                for turn in range(3):
                    request = prompt_request(f"p{index}-t{turn}", context, 8 + index % 5, priority)
                    answer = await collect(backend.generate(request))
                    now = anyio.current_time()
                    finished.append((request.call_id, now, answer.cached_prompt_tokens))
                    context += f" {answer.text} user{index} turn{turn}"

            async with anyio.create_task_group() as tg:
                for index, (start, priority) in enumerate(programs):
                    tg.start_soon(program, index, start, priority)
            return backend.stats(), sorted(finished)

    return run_virtual(main)


def test_same_seed_and_arrivals_give_identical_numbers() -> None:
    first_stats, first_finishes = _workload_run(seed=7)
    assert first_stats.preemptions > 0 and first_stats.cached_prompt_tokens > 0
    for _ in range(2):  # trio shuffles same-instant wakeups differently each run
        stats, finishes = _workload_run(seed=7)
        assert stats == first_stats
        assert finishes == first_finishes


def test_a_thousand_requests_run_to_completion() -> None:
    lengths = [16 + (i * 37) % 48 for i in range(1000)]

    async def main() -> tuple[SimStats, float]:
        backend = SimBackend(output_tokens=lambda r: lengths[int(r.call_id)])
        async with backend:

            async def one(i: int) -> None:
                await anyio.sleep(i * 0.005)
                await collect(backend.generate(prompt_request(str(i), words(40 + i % 200), 64)))

            async with anyio.create_task_group() as tg:
                for i in range(1000):
                    tg.start_soon(one, i)
            assert backend.busy_fraction() == pytest.approx(stats_busy(backend))
            return backend.stats(), anyio.current_time()

    stats, elapsed = run_virtual(main)
    assert stats.finished_requests == 1000
    assert stats.generated_tokens == sum(lengths)
    assert 0 < stats.busy_fraction(elapsed) <= 1


def stats_busy(backend: SimBackend) -> float:
    return backend.stats().busy_s / anyio.current_time()  # the MockClock starts at 0


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_runs_on_asyncio_in_real_time() -> None:
    fast = StepCostModel(base_s=1e-4, prefill_token_s=1e-6, decode_seq_s=1e-5, context_token_s=0.0)
    async with SimBackend(SMALL, fast) as backend:
        results = []

        async def one(call_id: str) -> None:
            results.append(await collect(backend.generate(prompt_request(call_id, "a b c", 5))))

        async with anyio.create_task_group() as tg:
            for call_id in "abc":
                tg.start_soon(one, call_id)
        with anyio.CancelScope() as scope:
            async for _ in backend.generate(prompt_request("cancelled", "x", 50)):
                scope.cancel()
        stats = backend.stats()
    assert [r.generated_tokens for r in results] == [5, 5, 5]
    assert stats.finished_requests == 3 and stats.aborted_requests == 1
