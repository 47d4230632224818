"""Resident sessions (`plas-pause`), on virtual time with the simulated engine.

Every step takes one time unit, so a call answering d tokens runs for about d units once
admitted. The budget is set by hand in tokens: a prompt of 400 characters is estimated
at 100 tokens, so a call of it answering 50 tokens has a working set of 150.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend, SimEngineConfig, StepCostModel
from taskloom.orchestrator.scheduler import make_scheduler
from taskloom.orchestrator.scheduler.resident_sessions import (
    DEFAULT_KV_FRACTION,
    PAUSE_POLICY,
    ResidentSessionScheduler,
    engines_kv_tokens,
)

T = TypeVar("T")

UNIT_STEP = StepCostModel(base_s=1.0, prefill_token_s=0.0, decode_seq_s=0.0, context_token_s=0.0)
PROMPT = "x" * 400  # estimated at 100 tokens


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    clock = MockClock(autojump_threshold=0)
    return anyio.run(main, backend="trio", backend_options={"clock": clock})


def request(program: str, turn: int, answer: int, prompt: str = PROMPT) -> GenerateRequest:
    return GenerateRequest(call_id=f"{program}/c{turn}", prompt=prompt,
                           sampling=SamplingParams(max_tokens=answer), program_id=program)


async def session(
    scheduler: ResidentSessionScheduler,
    program: str,
    *,
    start_s: float,
    answers: list[int],
    tool_s: float = 0.0,
    finished: dict[str, list[float]],
    prompt: str = PROMPT,
) -> None:
    """A chain of calls with `tool_s` of tool time between them; records when each call
    finished."""
    await anyio.sleep(start_s)
    for turn, answer in enumerate(answers):
        if turn:
            await anyio.sleep(tool_s)
        completion = await collect(scheduler.submit(request(program, turn, answer, prompt)))
        assert completion.generated_tokens == answer
        finished.setdefault(program, []).append(anyio.current_time())


def test_two_sessions_that_do_not_fit_together_take_turns_at_tool_calls() -> None:
    # Budget 250: one working set of 150 at a time. A arrives first; B waits until A
    # goes idle on its tool call (A is then paused), and A's second call waits until B
    # is idle in turn. Plain PLAS would run them side by side.
    async def main() -> tuple[dict[str, list[float]], int]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=250,
                                                 pause_after_s=0.0)
            async with anyio.create_task_group() as tasks:
                for program in ("A", "B"):
                    tasks.start_soon(lambda p=program: session(
                        scheduler, p, start_s=0.0, answers=[50, 50], tool_s=10.0,
                        finished=finished))
            return finished, scheduler.pauses

    finished, pauses = run_virtual(main)
    a_first, a_second = finished["A"]
    b_first, b_second = finished["B"]
    assert a_first < 60  # A alone at first
    assert b_first >= a_first + 50  # B started only once A went idle
    assert a_second >= b_first + 50  # A came back only once B went idle
    assert b_second >= a_second  # and B's second turn after A was idle again
    assert pauses >= 2


def test_a_session_is_kept_through_gaps_like_those_it_has_had() -> None:
    # Budget for one. A's tool calls take 10 units; once it has come back from one,
    # it is kept for 2 x 10 idle units before B may take its place, so B (arriving at
    # 65, during A's second call) waits until A has finished: A's third call comes
    # 10 units after its second ends. Nothing else happens after A's last call, so B's
    # own timer lets it in 20 units later.
    async def main() -> tuple[dict[str, list[float]], int]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=250,
                                                 pause_after_s=30.0)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: session(scheduler, "A", start_s=0.0,
                                                 answers=[50, 50, 50], tool_s=10.0,
                                                 finished=finished))
                tasks.start_soon(lambda: session(scheduler, "B", start_s=65.0, answers=[50],
                                                 finished=finished))
            return finished, scheduler.pauses

    finished, pauses = run_virtual(main)
    a_ends = finished["A"]
    assert a_ends[2] - a_ends[1] <= 10 + 51  # straight on after its tool call
    assert finished["B"][0] >= a_ends[2] + 2 * 10 + 50  # B only after A's grace
    assert finished["B"][0] <= a_ends[2] + 2 * 10 + 51
    assert pauses == 1


def test_side_by_side_when_the_budget_holds_both() -> None:
    async def main() -> dict[str, list[float]]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=300,
                                                 pause_after_s=0.0)
            async with anyio.create_task_group() as tasks:
                for program in ("A", "B"):
                    tasks.start_soon(lambda p=program: session(
                        scheduler, p, start_s=0.0, answers=[50], finished=finished))
            assert scheduler.pauses == 0
            return finished

    finished = run_virtual(main)
    assert finished["A"] == finished["B"]  # the same steps, one batch


def test_the_least_served_waiting_program_is_admitted_first() -> None:
    # Budget 200: one of C, H, B (working sets 110, 130, 110) at a time. C runs 10
    # units, goes to a tool, and is paused for H (30 units); C's next call (at 15, after
    # 10 units of service) and new B (at 20, none) wait. When H ends, B goes first
    # although C has waited longer: PLAS order.
    async def main() -> dict[str, list[float]]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=200,
                                                 pause_after_s=0.0)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: session(scheduler, "C", start_s=0.0, answers=[10, 10],
                                                 tool_s=5.0, finished=finished))
                tasks.start_soon(lambda: session(scheduler, "H", start_s=5.0, answers=[30],
                                                 finished=finished))
                tasks.start_soon(lambda: session(scheduler, "B", start_s=20.0, answers=[10],
                                                 finished=finished))
            return finished

    finished = run_virtual(main)
    (h_end,) = finished["H"]
    (b_end,) = finished["B"]
    assert h_end >= finished["C"][0] + 30
    assert h_end < b_end < finished["C"][1]
    assert finished["C"][1] >= b_end + 10


def test_a_paused_session_is_not_starved_by_a_stream_of_new_ones() -> None:
    # Budget for one session (working sets 110). C has 10 units of service when its
    # second call waits (at 15); new one-call programs arrive every 5 units, each with no
    # service, so PLAS alone would always prefer one of them. Once C has waited
    # max(beta x 10, 30) = 80 units it is starving: it goes next, long before the stream
    # ends.
    async def main() -> dict[str, list[float]]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=200,
                                                 pause_after_s=0.0)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: session(scheduler, "C", start_s=0.0, answers=[10, 10],
                                                 tool_s=5.0, finished=finished))
                for index in range(40):
                    tasks.start_soon(lambda i=index: session(
                        scheduler, f"N{i:02d}", start_s=12.0 + 5 * i, answers=[10],
                        finished=finished))
            return finished

    finished = run_virtual(main)
    c_second = finished["C"][1]
    assert 15 + 80 <= c_second <= 15 + 80 + 25  # admitted once starving, within a turn
    news_after = [f"N{i:02d}" for i in range(40) if finished[f"N{i:02d}"][0] > c_second]
    assert len(news_after) > 20  # most of the stream was still waiting


def test_a_program_bigger_than_the_budget_runs_alone() -> None:
    # Budget 100, but Big's working set is 150 (and S's 60). Big waits for S to go
    # idle, then runs alone; S's second call waits for Big.
    async def main() -> dict[str, list[float]]:
        finished: dict[str, list[float]] = {}
        async with SimBackend(SimEngineConfig(), UNIT_STEP) as engine:
            scheduler = ResidentSessionScheduler([engine], kv_budget_tokens=100,
                                                 pause_after_s=0.0)
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(lambda: session(scheduler, "S", start_s=0.0, answers=[20, 20],
                                                 tool_s=5.0, finished=finished,
                                                 prompt="x" * 160))
                tasks.start_soon(lambda: session(scheduler, "Big", start_s=1.0, answers=[50],
                                                 finished=finished))
            assert scheduler.working_set_tokens("Big") == 150
            return finished

    finished = run_virtual(main)
    (big_end,) = finished["Big"]
    assert big_end >= finished["S"][0] + 50
    assert finished["S"][1] >= big_end + 20


def test_registered_with_the_budget_the_engine_reports() -> None:
    async def main() -> None:
        config = SimEngineConfig(num_kv_blocks=1000, block_size=16)
        async with SimBackend(config, UNIT_STEP) as engine:
            scheduler = make_scheduler(PAUSE_POLICY, [engine])
            assert isinstance(scheduler, ResidentSessionScheduler)
            assert scheduler.kv_budget_tokens == int(16_000 * DEFAULT_KV_FRACTION)

    run_virtual(main)


def test_without_a_reported_kv_every_program_is_resident() -> None:
    # The scripted backend does not report its KV: nothing is held back (plain PLAS).
    async def main() -> list[str]:
        backend = ScriptedBackend(respond=lambda r: "one two three", per_chunk_s=1.0)
        assert engines_kv_tokens([backend]) is None
        scheduler = ResidentSessionScheduler([backend])
        async with anyio.create_task_group() as tasks:
            for program in ("A", "B"):
                tasks.start_soon(lambda p=program: collect(scheduler.submit(
                    request(p, 0, 5))))
            await anyio.sleep(0.5)
            running = sorted(scheduler.running_call_ids())
        return running

    assert run_virtual(main) == ["A/c0", "B/c0"]
