"""The program-aware scheduler, on virtual time (trio + MockClock).

The engines are the simulated engine (with a unit step cost where the arithmetic must be
done by hand) or the scripted backend (where the text must be checked word by word).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import Chunk, GenerateRequest, Message, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import FILLER_TEXT, SimBackend, SimEngineConfig, StepCostModel
from taskloom.errors import BackendError
from taskloom.orchestrator.scheduler import ProgramAwareScheduler, ProgramCancelled
from taskloom.orchestrator.scheduler.balancer import LocalityBalancer, RoundRobinBalancer
from taskloom.orchestrator.scheduler.queues import QueueConfig

T = TypeVar("T")

# Every step takes one time unit, whatever it holds: "unit-length decode steps".
UNIT_STEP = StepCostModel(base_s=1.0, prefill_token_s=0.0, decode_seq_s=0.0, context_token_s=0.0)
NO_STARVATION = math.inf


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    clock = MockClock(autojump_threshold=0)
    return anyio.run(main, backend="trio", backend_options={"clock": clock})


def call(
    call_id: str,
    max_tokens: int,
    *,
    program: str = "",
    thread: str = "main",
    parents: tuple[str, ...] = (),
    prompt: str | None = None,
) -> GenerateRequest:
    return GenerateRequest(
        call_id=call_id,
        prompt=prompt if prompt is not None else f"{call_id} please answer",
        sampling=SamplingParams(max_tokens=max_tokens),
        program_id=program or call_id.split("/")[0],
        thread_id=thread,
        parent_call_ids=parents,
    )


def words(count: int, prefix: str = "w") -> str:
    return " ".join(f"{prefix}{i}" for i in range(1, count + 1))


async def chain(scheduler: ProgramAwareScheduler, program: str, lengths: list[int]) -> float:
    """Run a program that is a chain of calls; return when its last call finished."""
    parents: tuple[str, ...] = ()
    for index, length in enumerate(lengths):
        call_id = f"{program}/c{index}"
        request = call(call_id, length, program=program, parents=parents)
        answer = await collect(scheduler.submit(request))
        assert answer.generated_tokens == length
        assert answer.text == FILLER_TEXT * length  # nothing lost or repeated on resume
        parents = (call_id,)
    return anyio.current_time()


# --------------------------------------------------------------- the worked example


# Figure 2 of the Autellix paper, with our own numbers. Two long programs and two short
# ones, each a chain of LLM calls, all submitted at t=0 in the order L1, L2, S1, S2 (the
# order FCFS breaks ties by). Decode lengths, in steps:
#
#     L1, L2: [2, 3]     (5 steps of service each)
#     S1, S2: [1, 2]     (3 steps of service each)
#
# One engine runs two calls at a time; each step takes 1 time unit, so a call of length
# d that starts at t ends at t + d, and a program's next call arrives the instant the
# previous one ends. Waiting time of a program = finish time - its service.
#
# MLFQ and PLAS use three levels with boundaries 2 and 4 (level 0: priority < 2, level 1:
# 2 <= priority < 4, level 2: the rest), so quanta of 2, 2 and unlimited.
#
# FCFS (arrival order, never preempts):
#   t=0  L1a, L2a run                       waiting: S1a, S2a
#   t=2  L1a, L2a end; L1b, L2b arrive      S1a, S2a (arrived t=0) run first
#   t=3  S1a, S2a end; S1b, S2b arrive      L1b, L2b (arrived t=2) run, 3 steps
#   t=6  L1, L2 finish                      S1b, S2b run, 2 steps
#   t=8  S1, S2 finish
#   waiting: L = 6 - 5 = 1 each, S = 8 - 3 = 5 each; total 1 + 1 + 5 + 5 = 12
#
# MLFQ (every call enters level 0; a call that has run 2 steps unfinished drops a level):
#   t=0  L1a, L2a run
#   t=2  L1a, L2a end (2 steps, finished: no demotion); S1a, S2a run
#   t=3  S1a, S2a end; L1b, L2b (level 0 since t=2) run before S1b, S2b (since t=3)
#   t=5  L1b, L2b have run 2 of 3 steps: demoted to level 1; S1b, S2b (level 0) preempt
#        them
#   t=7  S1b, S2b end: S1, S2 finish; L1b, L2b resume their last step
#   t=8  L1, L2 finish
#   waiting: L = 8 - 5 = 3 each, S = 7 - 3 = 4 each; total 3 + 3 + 4 + 4 = 14
#
# PLAS (a call enters the level of its program's attained service):
#   t=0  every program has 0 service: level 0; L1a, L2a run
#   t=2  L1, L2 have 2 steps of service: L1b, L2b enter level 1; S1a, S2a run
#   t=3  S1, S2 have 1 step: S1b, S2b enter level 0, ahead of L1b, L2b; they run
#   t=5  S1, S2 finish; L1b, L2b run (3 steps)
#   t=8  L1, L2 finish
#   waiting: L = 8 - 5 = 3 each, S = 5 - 3 = 2 each; total 3 + 3 + 2 + 2 = 10
#
# PLAS (10) < FCFS (12) < MLFQ (14): MLFQ forgets that L's second call belongs to a
# program that has already run, lets it in first, and then preempts it late.
FIGURE_2_PROGRAMS = {"L1": [2, 3], "L2": [2, 3], "S1": [1, 2], "S2": [1, 2]}
FIGURE_2_QUEUES = QueueConfig(boundaries_s=(2.0, 4.0), beta=NO_STARVATION)


def run_figure_2(policy: str) -> tuple[dict[str, float], int]:
    async def main() -> tuple[dict[str, float], int]:
        finish: dict[str, float] = {}
        async with SimBackend(SimEngineConfig(max_num_seqs=2), UNIT_STEP) as engine:
            scheduler = ProgramAwareScheduler(
                [engine], policy, queues=FIGURE_2_QUEUES, max_in_flight=2
            )

            async def program(name: str, lengths: list[int]) -> None:
                finish[name] = await chain(scheduler, name, lengths)

            async with anyio.create_task_group() as group:
                for name, lengths in FIGURE_2_PROGRAMS.items():
                    group.start_soon(program, name, lengths)
            return finish, scheduler.stats().preemptions

    return run_virtual(main)


def total_waiting(finish: dict[str, float]) -> float:
    return sum(finish[name] - sum(lengths) for name, lengths in FIGURE_2_PROGRAMS.items())


@pytest.mark.parametrize(
    ("policy", "finish", "waiting", "preemptions"),
    [
        ("fcfs", {"L1": 6, "L2": 6, "S1": 8, "S2": 8}, 12, 0),
        ("mlfq", {"L1": 8, "L2": 8, "S1": 7, "S2": 7}, 14, 2),
        ("plas", {"L1": 8, "L2": 8, "S1": 5, "S2": 5}, 10, 0),
        # In a chain the critical path is the whole program, so ATLAS equals PLAS.
        ("atlas", {"L1": 8, "L2": 8, "S1": 5, "S2": 5}, 10, 0),
    ],
)
def test_figure_2_worked_example(
    policy: str, finish: dict[str, float], waiting: float, preemptions: int
) -> None:
    measured, measured_preemptions = run_figure_2(policy)
    assert measured == finish
    assert total_waiting(measured) == waiting
    assert measured_preemptions == preemptions


def test_figure_2_plas_waits_strictly_less_than_fcfs_and_mlfq() -> None:
    policies = ("fcfs", "mlfq", "plas")
    waiting = {policy: total_waiting(run_figure_2(policy)[0]) for policy in policies}
    assert waiting["plas"] < waiting["fcfs"]
    assert waiting["plas"] < waiting["mlfq"]


def test_figure_2_is_the_same_on_every_run() -> None:
    # trio runs the tasks woken at one instant in random order; the result must not care.
    assert len({tuple(sorted(run_figure_2("mlfq")[0].items())) for _ in range(5)}) == 1


# --------------------------------------------------------------- preemption and resume


ANSWER = words(12)


def scripted(**options: float | int | None) -> ScriptedBackend:
    # One word per time unit: the first after 1, the next every 1 after that.
    return ScriptedBackend(respond=lambda request: ANSWER, delay_s=1.0, per_chunk_s=1.0,
                           **options)  # type: ignore[arg-type]


def demoting_queues() -> QueueConfig:
    # Level 0 holds 2 time units of service; a longer call drops to level 1 and any new
    # call (level 0 under MLFQ) outranks it.
    return QueueConfig(boundaries_s=(2.0,), beta=NO_STARVATION)


def test_preempted_call_resumes_and_its_stream_equals_the_unpreempted_answer() -> None:
    backend = scripted()

    async def main() -> tuple[list[Chunk], str, float, float]:
        scheduler = ProgramAwareScheduler([backend], "mlfq", queues=demoting_queues(),
                                          max_in_flight=1)
        long_chunks: list[Chunk] = []
        short_done = 0.0

        async def long_call() -> None:
            async for chunk in scheduler.submit(call("long", 100)):
                long_chunks.append(chunk)

        async def short_call() -> None:
            nonlocal short_done
            await anyio.sleep(3.5)
            assert (await collect(scheduler.submit(call("short", 100)))).text == ANSWER
            short_done = anyio.current_time()

        async with anyio.create_task_group() as group:
            group.start_soon(long_call)
            group.start_soon(short_call)
        assert scheduler.stats().preemptions == 1
        return long_chunks, "".join(c.text for c in long_chunks), short_done, anyio.current_time()

    chunks, text, short_done, end = run_virtual(main)
    assert text == ANSWER  # every word once, in order
    assert [c.generated_tokens for c in chunks] == list(range(1, 13))
    assert [c.finished for c in chunks] == [False] * 11 + [True]
    # The long call had words 1-3 (t=1,2,3) and was preempted at t=3.5; the short one
    # ran t=3.5..15.5, then the long one resumed: 9 more words, the first after 1.
    assert short_done == pytest.approx(15.5)
    assert end == pytest.approx(24.5)
    long_attempts = [r for r in backend.seen if r.call_id == "long"]
    assert [r.resume_text for r in long_attempts] == ["", "w1 w2 w3 "]
    assert [r.sampling.max_tokens for r in long_attempts] == [100, 97]
    assert [r.priority for r in long_attempts] == [0, 1]  # the engine sees the level
    assert backend.aborted == ["long"]


def test_a_call_preempted_while_its_consumer_holds_a_chunk_loses_nothing() -> None:
    # The consumer is busy between chunks (the scheduler's generator is parked at a
    # yield), so the preemption cannot interrupt a wait for the engine; the attempt stops
    # when the consumer asks for more.
    backend = scripted()

    async def main() -> str:
        scheduler = ProgramAwareScheduler([backend], "mlfq", queues=demoting_queues(),
                                          max_in_flight=1)
        parts: list[str] = []

        async def slow_consumer() -> None:
            async for chunk in scheduler.submit(call("long", 100)):
                parts.append(chunk.text)
                await anyio.sleep(0.75)

        async def newcomer() -> None:
            # The scripted engine waits between words only when asked for the next one:
            # word 1 at t=1, word 2 at t=2.75 (demoted: 2.75 units of service), and the
            # consumer holds word 2 until t=3.5. The newcomer preempts at t=3.2.
            await anyio.sleep(3.2)
            await collect(scheduler.submit(call("short", 100)))

        async with anyio.create_task_group() as group:
            group.start_soon(slow_consumer)
            group.start_soon(newcomer)
        assert scheduler.stats().preemptions == 1
        return "".join(parts)

    assert run_virtual(main) == ANSWER
    assert [r.resume_text for r in backend.seen if r.call_id == "long"] == ["", "w1 w2 "]
    assert backend.aborted == ["long"]


def test_preemption_on_the_sim_keeps_exact_tokens_and_hits_the_prefix_cache() -> None:
    config = SimEngineConfig(max_num_seqs=1, block_size=4, num_kv_blocks=256)

    async def main() -> tuple[list[Chunk], int]:
        async with SimBackend(config, UNIT_STEP) as engine:
            scheduler = ProgramAwareScheduler([engine], "mlfq", queues=demoting_queues(),
                                              max_in_flight=1)
            chunks: list[Chunk] = []

            async def long_call() -> None:
                prompt = words(40, "p")
                chunks.extend([c async for c in scheduler.submit(call("long", 10, prompt=prompt))])

            async def short_call() -> None:
                await anyio.sleep(4)
                await collect(scheduler.submit(call("short", 2)))

            async with anyio.create_task_group() as group:
                group.start_soon(long_call)
                group.start_soon(short_call)
            stats = scheduler.stats()
            assert stats.preemptions == 1
            return chunks, stats.engines[0].cached_prompt_tokens

    chunks, cached = run_virtual(main)
    assert "".join(c.text for c in chunks) == FILLER_TEXT * 10
    assert [c.generated_tokens for c in chunks] == list(range(1, 11))
    assert chunks[-1].finish_reason == "length"
    # The resumed attempt re-read the 40-token prompt and 4 answered tokens from cache
    # (whole 4-token blocks: 44 tokens, less the last block that must be recomputed).
    assert cached == 40


# --------------------------------------------------------------- anti-starvation


def starvation_run(beta: float) -> tuple[float, list[float], int]:
    """An old program's second call (level 1) against a flood of new programs (level 0).

    `P` runs a 2-word call alone (t=0..2), so its next call enters level 1. From t=1 a
    new program with a 2-word call arrives every time unit, 8 in all; one engine slot.
    """
    backend = ScriptedBackend(respond=lambda r: "x y", delay_s=1.0, per_chunk_s=1.0)
    queues = QueueConfig(boundaries_s=(1.0,), quanta_s=(math.inf, math.inf), beta=beta)

    async def main() -> tuple[float, list[float], int]:
        scheduler = ProgramAwareScheduler([backend], "plas", queues=queues, max_in_flight=1)
        flood_done: list[float] = []
        old_done = 0.0

        async def old_program() -> None:
            nonlocal old_done
            await collect(scheduler.submit(call("P/a", 10)))
            await collect(scheduler.submit(call("P/b", 10, parents=("P/a",))))
            old_done = anyio.current_time()

        async def newcomer(index: int) -> None:
            await anyio.sleep(1 + index)
            await collect(scheduler.submit(call(f"F{index}/a", 10)))
            flood_done.append(anyio.current_time())

        async with anyio.create_task_group() as group:
            group.start_soon(old_program)
            for index in range(8):
                group.start_soon(newcomer, index)
        return old_done, flood_done, scheduler.stats().promotions

    return run_virtual(main)


def test_anti_starvation_promotes_a_call_that_waited_beta_times_its_service() -> None:
    starved_done, flood, promotions = starvation_run(NO_STARVATION)
    assert promotions == 0
    assert starved_done > max(flood)  # without promotion it waits for the whole flood

    rescued_done, flood, promotions = starvation_run(beta=2.0)
    assert promotions == 1
    # P has 2 units of service, so at waiting >= 4 (t=6) its call goes to the top level,
    # behind the flood calls already there.
    assert rescued_done < max(flood)
    assert rescued_done < starved_done


# --------------------------------------------------------------- cancellation


def test_cancelling_a_program_removes_its_queued_calls() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c", delay_s=1.0, per_chunk_s=1.0)

    async def main() -> tuple[list[str], list[str], int]:
        scheduler = ProgramAwareScheduler([backend], "atlas", queues=QueueConfig.single(),
                                          max_in_flight=1)
        outcomes: list[str] = []

        async def consume(request: GenerateRequest) -> None:
            try:
                answer = await collect(scheduler.submit(request))
                outcomes.append(f"{request.call_id}: {answer.text}")
            except ProgramCancelled:
                outcomes.append(f"{request.call_id}: cancelled")

        async with anyio.create_task_group() as group:
            group.start_soon(consume, call("A/1", 10))
            await anyio.sleep(0.5)
            group.start_soon(consume, call("B/1", 10))
            group.start_soon(consume, call("B/2", 10, thread="other"))
            await anyio.sleep(0.5)
            queued = scheduler.queued_call_ids()
            assert sorted(queued) == ["B/1", "B/2"]
            cancelled = scheduler.cancel_program("B")
            assert scheduler.queued_call_ids() == []
        return outcomes, [r.call_id for r in backend.seen], cancelled

    outcomes, seen, cancelled = run_virtual(main)
    assert cancelled == 2
    assert sorted(outcomes) == ["A/1: a b c", "B/1: cancelled", "B/2: cancelled"]
    assert seen == ["A/1"]  # the engine never saw B


def test_a_consumer_that_gives_up_takes_its_call_out_of_the_queue() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c", delay_s=1.0, per_chunk_s=1.0)

    async def main() -> list[str]:
        scheduler = ProgramAwareScheduler([backend], "plas", queues=QueueConfig.single(),
                                          max_in_flight=1)
        async with anyio.create_task_group() as group:
            group.start_soon(collect, scheduler.submit(call("A/1", 10)))
            await anyio.sleep(0.5)
            with anyio.move_on_after(1.0):
                await collect(scheduler.submit(call("B/1", 10)))
            assert scheduler.queued_call_ids() == []
            group.start_soon(collect, scheduler.submit(call("C/1", 10)))
        return [r.call_id for r in backend.seen]

    assert run_virtual(main) == ["A/1", "C/1"]


def test_cancelling_a_program_aborts_its_running_call() -> None:
    backend = ScriptedBackend(respond=lambda r: words(10), delay_s=1.0, per_chunk_s=1.0)

    async def main() -> tuple[str, float]:
        scheduler = ProgramAwareScheduler([backend], "atlas", max_in_flight=1)
        received: list[str] = []

        async def consume() -> None:
            with pytest.raises(ProgramCancelled):
                async for chunk in scheduler.submit(call("A/1", 10)):
                    received.append(chunk.text)

        async with anyio.create_task_group() as group:
            group.start_soon(consume)
            await anyio.sleep(2.5)
            assert scheduler.cancel_program("A") == 1
        return "".join(received), anyio.current_time()

    text, end = run_virtual(main)
    assert text == "w1 w2 "
    assert end == pytest.approx(2.5)
    assert backend.aborted == ["A/1"] and not backend.in_flight


# --------------------------------------------------------------- engine failure


def test_an_engine_that_dies_mid_stream_hands_its_call_to_another_engine() -> None:
    dying = ScriptedBackend(respond=lambda r: ANSWER, fail_after_chunks=2, name="dying")
    healthy = ScriptedBackend(respond=lambda r: ANSWER, name="healthy")

    async def main() -> tuple[list[Chunk], tuple[int, ...], str]:
        scheduler = ProgramAwareScheduler([dying, healthy], "atlas", max_in_flight=4)
        chunks = [chunk async for chunk in scheduler.submit(call("A/1", 50))]
        dead = scheduler.stats().dead_engines
        later = await collect(scheduler.submit(call("B/1", 50)))
        return chunks, dead, later.text

    chunks, dead, later = run_virtual(main)
    assert "".join(c.text for c in chunks) == ANSWER
    assert [c.generated_tokens for c in chunks] == list(range(1, 13))
    assert dead == (0,)
    assert [r.resume_text for r in healthy.seen] == ["w1 w2 ", ""]
    assert [r.call_id for r in dying.seen] == ["A/1"]  # nothing new goes to a dead engine
    assert later == ANSWER


def test_a_call_that_fails_on_every_engine_raises_and_leaves_the_engines_up() -> None:
    engines = [ScriptedBackend(respond=lambda r: ANSWER, fail_after_chunks=0) for _ in range(2)]

    async def main() -> tuple[int, ...]:
        scheduler = ProgramAwareScheduler(engines, "atlas")
        with pytest.raises(BackendError):
            await collect(scheduler.submit(call("A/1", 50)))
        return scheduler.stats().dead_engines

    assert run_virtual(main) == ()  # the request, not the engines, was at fault
    assert [len(engine.seen) for engine in engines] == [1, 1]


def test_a_simulated_engine_that_stops_moves_every_running_call() -> None:
    config = SimEngineConfig(max_num_seqs=8, block_size=4, num_kv_blocks=256)

    async def main() -> tuple[list[int], tuple[int, ...], int]:
        async with SimBackend(config, UNIT_STEP) as first, SimBackend(config, UNIT_STEP) as second:
            scheduler = ProgramAwareScheduler(
                [first, second], "atlas", balancer=RoundRobinBalancer(), max_in_flight=8
            )
            lengths: list[int] = []

            async def one(index: int) -> None:
                answer = await collect(scheduler.submit(call(f"P{index}/a", 6)))
                assert answer.text == FILLER_TEXT * 6
                lengths.append(answer.generated_tokens)

            async with anyio.create_task_group() as group:
                for index in range(4):
                    group.start_soon(one, index)
                await anyio.sleep(2.5)
                await first.close()
            stats = scheduler.stats()
            return lengths, stats.dead_engines, second.stats().finished_requests

    lengths, dead, finished_on_second = run_virtual(main)
    assert lengths == [6, 6, 6, 6]
    assert dead == (0,)
    assert finished_on_second == 4


# --------------------------------------------------------------- load balancing


def conversation_run(balancer: LocalityBalancer | RoundRobinBalancer) -> float:
    """Three programs on two engines, each a conversation whose every call re-sends the
    growing history (long prompts); returns the scheduler's prefix-cache hit rate."""
    config = SimEngineConfig(max_num_seqs=8, block_size=4, num_kv_blocks=4096)

    async def main() -> float:
        async with SimBackend(config, UNIT_STEP) as first, SimBackend(config, UNIT_STEP) as second:
            scheduler = ProgramAwareScheduler([first, second], "atlas", balancer=balancer)

            async def conversation(program: str) -> None:
                history: list[Message] = []
                for turn in range(4):
                    history.append(Message("user", words(60, f"{program}{turn}x")))
                    request = GenerateRequest(
                        f"{program}/t{turn}", messages=tuple(history),
                        sampling=SamplingParams(max_tokens=8), program_id=program,
                    )
                    answer = await collect(scheduler.submit(request))
                    history.append(Message("assistant", answer.text))

            async with anyio.create_task_group() as group:
                for program in ("P", "Q", "R"):
                    group.start_soon(conversation, program)
            return scheduler.stats().prefix_cache_hit_rate

    return run_virtual(main)


def test_long_calls_stay_with_their_context_and_hit_the_prefix_cache_more() -> None:
    locality = conversation_run(LocalityBalancer(short_prompt_tokens=50))
    round_robin = conversation_run(RoundRobinBalancer())
    assert locality > round_robin
    assert locality > 0.5


def test_a_chat_request_resumes_after_the_assistant_header_on_the_sim() -> None:
    # The resumed prompt is the chat plus the answer so far, so the prefix cache holds it.
    config = SimEngineConfig(max_num_seqs=1, block_size=4, num_kv_blocks=256)

    async def main() -> tuple[str, int]:
        async with SimBackend(config, UNIT_STEP) as engine:
            scheduler = ProgramAwareScheduler([engine], "mlfq", queues=demoting_queues(),
                                              max_in_flight=1)
            chat = GenerateRequest("long", messages=(Message("user", words(30)),),
                                   sampling=SamplingParams(max_tokens=9), program_id="long")
            parts: list[str] = []

            async def long_call() -> None:
                parts.append((await collect(scheduler.submit(chat))).text)

            async def short_call() -> None:
                await anyio.sleep(4)
                await collect(scheduler.submit(call("short", 1)))

            async with anyio.create_task_group() as group:
                group.start_soon(long_call)
                group.start_soon(short_call)
            return parts[0], scheduler.stats().engines[0].cached_prompt_tokens

    text, cached = run_virtual(main)
    assert text == FILLER_TEXT * 9
    assert cached > 0


# --------------------------------------------------------------- with the executor


FAN_OUT = """
name: fan
nodes:
  a: {kind: llm, prompt: "A"}
  b: {kind: llm, prompt: "B"}
  join: {kind: llm, prompt: "{{ a }} + {{ b }}"}
outputs:
  joined: "{{ join }}"
"""


def test_a_program_runs_through_the_scheduler_with_its_call_graph() -> None:
    from taskloom.program.load import loads
    from taskloom.runtime import Runtime

    backend = ScriptedBackend(respond=lambda r: "ok done", delay_s=1.0, per_chunk_s=1.0)

    async def main() -> tuple[str, dict[str, float]]:
        scheduler = ProgramAwareScheduler([backend], "atlas", max_in_flight=2)
        result = await Runtime(backend, scheduler=scheduler).run(loads(FAN_OUT), run_id="r1")
        row = scheduler.table.snapshot("r1")
        return str(result.outputs["joined"]), dict(row.call_path_end_s)

    joined, paths = run_virtual(main)
    assert joined == "ok done"
    join = next(r for r in backend.seen if r.thread_id.startswith("join"))
    assert sorted(join.parent_call_ids) == sorted(r.call_id for r in backend.seen[:2])
    # a and b ran 2 units each in parallel; the join's path starts at 2, ends at 4.
    assert paths[join.call_id] == pytest.approx(4.0)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_preemption_keeps_the_output_exact_in_real_time(anyio_backend: str) -> None:
    backend = ScriptedBackend(respond=lambda r: ANSWER, per_chunk_s=0.01)
    queues = QueueConfig(boundaries_s=(0.02,), beta=NO_STARVATION)
    scheduler = ProgramAwareScheduler([backend], "mlfq", queues=queues, max_in_flight=1)
    answers: list[str] = []

    async def one(call_id: str, delay: float) -> None:
        await anyio.sleep(delay)
        answers.append((await collect(scheduler.submit(call(call_id, 100)))).text)

    async with anyio.create_task_group() as group:
        group.start_soon(one, "long", 0.0)
        group.start_soon(one, "short", 0.05)
    assert answers == [ANSWER, ANSWER]
    assert scheduler.stats().preemptions >= 1
    assert any(r.resume_text for r in backend.seen)


def test_admission_control_caps_calls_in_flight_at_the_engines_capacity() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b", delay_s=1.0, per_chunk_s=1.0,
                              max_in_flight=3)

    async def main() -> tuple[int, list[str]]:
        scheduler = ProgramAwareScheduler([backend], "fcfs", max_in_flight=10)  # > capacity
        peak = 0

        async def watch() -> None:
            # Sample between the instants where calls arrive and chunks come (whole
            # seconds): within one instant the scheduler may start a call and take it
            # back before the engine did any work (see `_dispatch`), and trio runs the
            # tasks of an instant in random order, so a sample there is a coin toss.
            nonlocal peak
            await anyio.sleep(0.25)
            for _ in range(20):
                peak = max(peak, len(backend.in_flight))
                await anyio.sleep(0.5)

        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            for index in range(5):
                group.start_soon(collect, scheduler.submit(call(f"P{index}/a", 10)))
            await anyio.sleep(0.1)
            queued = scheduler.queued_call_ids()
        return peak, queued

    peak, queued = run_virtual(main)
    assert peak == 3
    assert queued == ["P3/a", "P4/a"]
