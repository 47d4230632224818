"""`SimBackend`'s stream interval and fast-forward: fewer chunks and fewer wake-ups, the
same simulated numbers."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import Chunk, GenerateRequest, SamplingParams, collect
from taskloom.backends.sim import (
    FILLER_TEXT,
    H100_LLAMA3_8B,
    SimBackend,
    SimEngine,
    SimEngineConfig,
    SimStats,
    StepCostModel,
)
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.queues import QueueConfig

T = TypeVar("T")

UNIT_STEP = StepCostModel(base_s=1.0, prefill_token_s=0.0, decode_seq_s=0.0, context_token_s=0.0)
EVERY_TOKEN, EVERY_FIFTH, FIRST_AND_LAST = 1, 5, 1 << 30


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    clock = MockClock(autojump_threshold=0)
    return anyio.run(main, backend="trio", backend_options={"clock": clock})


def request(call_id: str, prompt: str, max_tokens: int, priority: int = 0) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=prompt, priority=priority,
                           sampling=SamplingParams(max_tokens=max_tokens))


def words(count: int, prefix: str) -> str:
    return " ".join(f"{prefix}{i}" for i in range(count))


@pytest.mark.parametrize(
    ("interval", "expected"),
    [(EVERY_TOKEN, list(range(1, 13))), (EVERY_FIFTH, [1, 6, 11, 12]),
     (FIRST_AND_LAST, [1, 12])],
)
def test_a_chunk_gathers_the_tokens_of_one_stream_interval(interval: int,
                                                           expected: list[int]) -> None:
    async def main() -> tuple[list[Chunk], float]:
        async with SimBackend(stream_interval=interval) as backend:
            await anyio.sleep(1.0)  # fast-forwards start once the clock is past 0
            chunks = [c async for c in backend.generate(request("a", "a b c", 12))]
            return chunks, anyio.current_time()

    chunks, finished_at = run_virtual(main)
    assert [c.generated_tokens for c in chunks] == expected
    assert "".join(c.text for c in chunks) == FILLER_TEXT * 12
    assert [c.text.count(FILLER_TEXT) for c in chunks] == [
        after - before for before, after in zip([0, *expected], expected, strict=False)
    ]
    assert [c.finished for c in chunks] == [False] * (len(expected) - 1) + [True]
    assert chunks[-1].finish_reason == "length"
    # The same virtual finish time as a chunk per token, step by step.
    assert finished_at == run_virtual(lambda: finish_time(EVERY_TOKEN, False))


async def finish_time(interval: int, fast_forward: bool) -> float:
    async with SimBackend(stream_interval=interval, fast_forward=fast_forward) as backend:
        await anyio.sleep(1.0)
        await collect(backend.generate(request("a", "a b c", 12)))
        return anyio.current_time()


def test_a_stream_interval_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="stream_interval"):
        SimBackend(stream_interval=0)


# ------------------------------------------------------- fast-forward equivalence

Finish = tuple[str, float, int, int, bool]


def workload_run(seed: int, interval: int, fast_forward: bool,
                 spy: dict[str, int] | None = None) -> tuple[SimStats, list[Finish]]:
    """Multi-turn programs sharing prefixes, same-prompt twins, bursts of arrivals,
    consumers that give up at arbitrary times, and a KV cache small enough to preempt.
    Each finish records (call, virtual time, generated tokens, cached prompt tokens,
    completed)."""
    config = SimEngineConfig(max_num_seqs=12, num_kv_blocks=90, block_size=8,
                             max_num_batched_tokens=96)
    rng = random.Random(seed)
    plans = [
        (rng.choice([1.0, 1.0, rng.uniform(1, 4)]), rng.randint(1, 60), rng.random() < 0.25,
         rng.uniform(0.05, 0.5))
        for _ in range(24)
    ]

    async def main() -> tuple[SimStats, list[Finish]]:
        finished: list[Finish] = []
        async with SimBackend(config, H100_LLAMA3_8B, stream_interval=interval,
                              fast_forward=fast_forward) as backend:
            if spy is not None:
                watch(backend.engine, spy)

            async def one(call_id: str, prompt: str, length: int, patience: float) -> str:
                # What a consumer sees part-way depends on the stream interval, so only
                # a completed answer counts; one given up on leaves no text behind.
                with anyio.move_on_after(patience):
                    answer = await collect(backend.generate(request(call_id, prompt, length)))
                    finished.append((call_id, anyio.current_time(), answer.generated_tokens,
                                     answer.cached_prompt_tokens, True))
                    return answer.text
                finished.append((call_id, anyio.current_time(), 0, 0, False))
                return ""

            async def program(index: int, start: float, length: int, twins: bool,
                              patience: float) -> None:
                await anyio.sleep(start)
                context = words(12, "system") + " " + words(10 + index % 7, f"p{index}")
                for turn in range(3):
                    call_id = f"p{index}-t{turn}"
                    if twins:  # two samples of one prompt, side by side
                        async with anyio.create_task_group() as group:
                            for sample in range(2):
                                group.start_soon(one, f"{call_id}-s{sample}", context, length,
                                                 100.0)
                        answer = FILLER_TEXT * length
                    else:
                        # The last program's consumers give up part-way: aborts.
                        wait = patience if index % 4 == 3 else 100.0
                        answer = await one(call_id, context, length + turn, wait)
                    context += f" {answer} user{index} turn{turn}"

            async with anyio.create_task_group() as group:
                for index, plan in enumerate(plans):
                    group.start_soon(program, index, *plan)
            return backend.stats(), sorted(finished)

    return run_virtual(main)


def watch(engine: SimEngine, spy: dict[str, int]) -> None:
    """Count the steps the engine applied in bulk."""
    bulk = engine.complete_decode_steps

    def counting(seconds: list[float]) -> None:
        spy["bulk_steps"] = spy.get("bulk_steps", 0) + len(seconds)
        bulk(seconds)

    engine.complete_decode_steps = counting  # type: ignore[method-assign]


@pytest.mark.parametrize("seed", [3, 8])
def test_fast_forward_and_coarse_streams_give_the_step_by_step_numbers(seed: int) -> None:
    spy: dict[str, int] = {}
    reference = workload_run(seed, EVERY_TOKEN, False)
    stats, finishes = reference
    assert stats.preemptions > 0 and stats.aborted_requests > 0
    assert stats.cached_prompt_tokens > 0
    assert any(not completed for *_, completed in finishes)
    assert any(cached > 0 for _, _, _, cached, _ in finishes)
    assert workload_run(seed, FIRST_AND_LAST, False) == reference
    assert workload_run(seed, EVERY_FIFTH, True) == reference
    assert workload_run(seed, FIRST_AND_LAST, True, spy) == reference
    assert spy["bulk_steps"] > stats.steps // 4  # it did fast-forward, a lot


def test_fast_forward_keeps_runs_identical_across_trio_orderings() -> None:
    first = workload_run(5, FIRST_AND_LAST, True)
    for _ in range(2):
        assert workload_run(5, FIRST_AND_LAST, True) == first


def test_an_abort_inside_a_fast_forward_lands_in_the_step_it_falls_in() -> None:
    # From t = 10 two requests of 10 tokens run one unit per step: step 1 (10-11)
    # prefills both, steps 2-10 decode. "b" gives up at t = 15.5, inside step 6: it keeps
    # the 5 tokens of steps 1-5 and its blocks are freed at once. With only first and
    # last tokens streamed, steps 2-10 are one fast-forward, woken by the abort: steps
    # 2-5 are applied in bulk, step 6 runs to its end, then steps 7-9 in bulk and 10.
    async def main(interval: int, fast_forward: bool,
                   spy: dict[str, int]) -> tuple[Any, ...]:
        async with SimBackend(SimEngineConfig(block_size=4), UNIT_STEP,
                              stream_interval=interval, fast_forward=fast_forward) as backend:
            watch(backend.engine, spy)
            await anyio.sleep(10.0)
            ended: dict[str, tuple[float, int]] = {}

            async def one(call_id: str, patience: float) -> None:
                with anyio.move_on_after(patience):
                    await collect(backend.generate(request(call_id, "x y z", 10)))
                ended[call_id] = (anyio.current_time(), backend.engine.kv.num_free_blocks)

            async with anyio.create_task_group() as group:
                group.start_soon(one, "a", 100.0)
                group.start_soon(one, "b", 5.5)
            return ended["a"], ended["b"], backend.stats()

    reference: dict[str, int] = {}
    step_by_step = run_virtual(lambda: main(EVERY_TOKEN, False, reference))
    a_end, b_end, stats = step_by_step
    assert a_end[0] == 20.0 and b_end[0] == 15.5
    assert stats.aborted_requests == 1 and stats.steps == 10
    assert stats.generated_tokens == 10 + 5
    assert reference == {}
    spy: dict[str, int] = {}
    assert run_virtual(lambda: main(FIRST_AND_LAST, True, spy)) == step_by_step
    assert spy == {"bulk_steps": 4 + 3}


def test_preemption_by_the_program_aware_scheduler_keeps_exact_output() -> None:
    # MLFQ demotes a call that had more than 2 units of service, which the scheduler
    # checks when a chunk comes. With a chunk every 5 tokens the long call is demoted at
    # its 6th token (t = 6) and the first newcomer, waiting since t = 4, preempts it at
    # once: nothing unpublished is lost. The long call resumes at t = 8 (its 7th token
    # published at t = 9) and the second newcomer preempts it at t = 10.5, when its 8th
    # token is generated but not yet published: the third attempt generates it again.
    # More engine work, the same answer. (With only the first and last token streamed
    # the call would never be demoted: coarse streams delay what the scheduler learns.)
    config = SimEngineConfig(max_num_seqs=1, block_size=4, num_kv_blocks=256)
    queues = QueueConfig(boundaries_s=(2.0,), beta=float("inf"))

    async def main() -> tuple[list[Chunk], int, int]:
        async with SimBackend(config, UNIT_STEP, stream_interval=EVERY_FIFTH) as engine:
            scheduler = ProgramAwareScheduler([engine], "mlfq", queues=queues, max_in_flight=1)
            chunks: list[Chunk] = []

            async def long_call() -> None:
                long = request("long", words(40, "p"), 10)
                chunks.extend([c async for c in scheduler.submit(long)])

            async def newcomer(call_id: str, at: float) -> None:
                await anyio.sleep(at)
                await collect(scheduler.submit(request(call_id, "q", 2)))

            async with anyio.create_task_group() as group:
                group.start_soon(long_call)
                group.start_soon(newcomer, "first", 4.0)
                group.start_soon(newcomer, "second", 10.5)
            return chunks, scheduler.stats().preemptions, engine.stats().generated_tokens

    chunks, preemptions, engine_tokens = run_virtual(main)
    assert "".join(c.text for c in chunks) == FILLER_TEXT * 10
    assert chunks[-1].generated_tokens == 10 and chunks[-1].finish_reason == "length"
    assert preemptions == 2
    assert engine_tokens == 10 + 2 * 2 + 1


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_coarse_streams_and_fast_forward_run_on_asyncio_in_real_time() -> None:
    fast = StepCostModel(base_s=1e-4, prefill_token_s=1e-6, decode_seq_s=1e-5, context_token_s=0.0)
    async with SimBackend(SimEngineConfig(block_size=4), fast, stream_interval=4) as backend:
        answers: list[list[Chunk]] = []

        async def one(call_id: str, length: int) -> None:
            answers.append([c async for c in backend.generate(request(call_id, "a b", length))])

        async with anyio.create_task_group() as group:
            for index, call_id in enumerate("abc"):
                group.start_soon(one, call_id, 20 + 5 * index)
            with anyio.CancelScope() as scope:  # an abort while the others decode
                async for _ in backend.generate(request("gone", "x", 50)):
                    scope.cancel()
        stats = backend.stats()
    assert sorted(a[-1].generated_tokens for a in answers) == [20, 25, 30]
    assert all("".join(c.text for c in a) == FILLER_TEXT * a[-1].generated_tokens
               for a in answers)
    assert stats.finished_requests == 3 and stats.aborted_requests == 1
