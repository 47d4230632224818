"""Gang admission and certainty-driven reallocation of sample slots."""

from __future__ import annotations

import anyio
import pytest
from certainty_helpers import run_virtual

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.certainty.allocation import (
    CertaintyAllocator,
    CertaintyAwareScheduler,
    FixedWidthAllocator,
    FlatCertainty,
    QueryDemand,
    SampleLease,
    allocator_of,
)
from taskloom.orchestrator.certainty.answers import last_number
from taskloom.orchestrator.certainty.rules import BetaRule
from taskloom.orchestrator.certainty.self_consistency import Sample, VoteOutcome, vote
from taskloom.orchestrator.certainty.tally import VoteTally
from taskloom.orchestrator.llm_call import CallLedger, complete_text
from taskloom.orchestrator.scheduler import FifoScheduler


def test_flat_low_certainty_at_the_budget_is_hopeless() -> None:
    flat = FlatCertainty(below=0.5, min_gain=0.05, window=4)
    low_and_flat = [0.1, 0.12, 0.1, 0.11, 0.12, 0.12, 0.13, 0.12]
    rising = [0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45]
    assert flat.is_hopeless(low_and_flat, budget=8)
    assert not flat.is_hopeless(low_and_flat, budget=9)  # not at its budget yet
    assert not flat.is_hopeless(rising, budget=8)  # still gaining: keep sampling
    assert not flat.is_hopeless([0.6] * 8, budget=8)  # flat but high: the rule decides


def test_gang_admission_waits_for_the_whole_gang_and_beats_wider_sampling() -> None:
    pool = CertaintyAllocator(slots=6)
    events: list[str] = []

    async def second_query() -> None:
        async with pool.admit(QueryDemand("b", cap=8, gang=4)) as lease:
            events.append(f"b admitted, {pool.used} used")
            for _ in range(4):
                await lease.acquire()  # the gang is paid for: no waiting
            events.append("b gang running")

    async def main() -> None:
        async with pool.admit(QueryDemand("a", cap=8, gang=4)) as a:
            for _ in range(4):
                await a.acquire()
            assert pool.used == 4
            async with anyio.create_task_group() as group:
                group.start_soon(second_query)
                await anyio.wait_all_tasks_blocked()
                assert events == [] and pool.crowded  # 2 free slots: not a gang of 4
                with anyio.move_on_after(1):
                    await a.acquire()  # a 5th sample of a must not take b's slots
                    events.append("a widened")
                a.release()
                a.release()  # now 4 are free
                await anyio.wait_all_tasks_blocked()
                assert events == ["b admitted, 6 used", "b gang running"]

    run_virtual(main)


def test_a_query_with_nothing_in_flight_goes_before_admissions() -> None:
    pool = CertaintyAllocator(slots=4)
    granted = anyio.Event()

    async def fifth_sample(lease: SampleLease) -> None:
        await lease.acquire()
        granted.set()

    async def main() -> None:
        async with pool.admit(QueryDemand("a", cap=8, gang=4)) as a:
            for _ in range(4):
                await a.acquire()
            async with anyio.create_task_group() as group:
                group.start_soon(fifth_sample, a)  # a waits for a slot...
                group.start_soon(_admit_and_hold, pool, QueryDemand("b", 8, 4))  # ...so does b
                await anyio.wait_all_tasks_blocked()
                for _ in range(4):
                    a.release()
                # b could be admitted now, but a has nothing running and asked first.
                await anyio.wait_all_tasks_blocked()
                assert granted.is_set() and pool.used == 1
                group.cancel_scope.cancel()

    run_virtual(main)


async def _admit_and_hold(pool: CertaintyAllocator, demand: QueryDemand) -> None:
    async with pool.admit(demand):
        await anyio.sleep_forever()


def test_an_uncrowded_pool_lets_a_query_run_all_its_samples_at_once() -> None:
    pool = CertaintyAllocator(slots=100)

    async def main() -> None:
        async with pool.admit(QueryDemand("a", cap=16, gang=4)) as lease:
            with anyio.fail_after(1):
                for _ in range(16):
                    await lease.acquire()
            assert pool.used == 16

    run_virtual(main)


def test_certainty_sets_the_share_of_a_crowded_pool() -> None:
    pool = CertaintyAllocator(slots=10, crowded_width=2)
    demand = QueryDemand("a", cap=32, gang=4)
    rising = [0.1, 0.2, 0.3, 0.4, 0.5, 0.55]
    flat = [0.1, 0.12, 0.1, 0.11, 0.12, 0.12]
    assert pool.width(demand, rising, crowded=False) == 32  # spare slots: all at once
    assert pool.width(demand, [], crowded=True) == 4  # the gang, before any judgment
    assert pool.width(demand, rising, crowded=True) == 2
    assert pool.width(demand, flat, crowded=True) == 1  # going nowhere: slowly


def test_budgets_shrink_only_when_crowded() -> None:
    pool = CertaintyAllocator(slots=10, crowded_budget=0.25)
    demand = QueryDemand("a", cap=64, gang=4)
    assert pool.budget(demand, crowded=False) == 64
    assert pool.budget(demand, crowded=True) == 16
    assert pool.budget(QueryDemand("b", cap=8, gang=4), crowded=True) == 8  # at least 2 gangs


def test_cancelled_admission_leaves_the_queue() -> None:
    pool = CertaintyAllocator(slots=4)

    async def main() -> None:
        async with pool.admit(QueryDemand("a", cap=4, gang=4)):
            with anyio.move_on_after(1):
                async with pool.admit(QueryDemand("b", cap=4, gang=4)):
                    pytest.fail("b cannot be admitted while a holds every slot")
            assert not pool.crowded or pool.used >= 4
        assert pool.used == 0 and not pool.crowded

    run_virtual(main)


def test_under_load_confident_queries_stop_and_hopeless_ones_give_up() -> None:
    # Query "easy" agrees at once; "hard" answers something new every time.
    def respond(request: GenerateRequest) -> str:
        query, index = request.call_id.split("/s")
        return f"w w w {7 if query == 'easy' else index}"

    backend = ScriptedBackend(respond=respond, per_chunk_s=0.01)
    pool = CertaintyAllocator(slots=6, crowded_budget=0.25)
    outcomes: dict[str, VoteOutcome] = {}

    async def query(name: str) -> None:
        async def draw(index: int) -> Sample:
            request = GenerateRequest(call_id=f"{name}/s{index}", prompt=name,
                                      sampling=SamplingParams(max_tokens=10))
            text = await complete_text(backend.generate, request, CallLedger())
            return Sample(index, text, last_number(text))

        async with pool.admit(QueryDemand(name, cap=32, gang=4)) as lease:
            outcomes[name] = await vote(draw, cap=32, rule=BetaRule(0.95), lease=lease)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for name in ("hard", "easy", "easy2", "hard2"):
                group.start_soon(query, name)
                await anyio.sleep(0)

    run_virtual(main)
    assert outcomes["easy"].stop_reason == "rule" and outcomes["easy"].samples_used == 4
    assert outcomes["hard"].stop_reason == "hopeless"
    assert outcomes["hard"].samples_used < 32 and outcomes["hard"].certainty == 0.0
    assert backend.in_flight == set() and pool.used == 0


def test_nodes_find_the_allocator_on_the_scheduler() -> None:
    backend = ScriptedBackend()
    pool = CertaintyAllocator(slots=8)
    wrapped = CertaintyAwareScheduler(FifoScheduler(backend), pool)
    fallback = FixedWidthAllocator(2)
    assert allocator_of(wrapped, fallback) is pool
    assert allocator_of(FifoScheduler(backend), fallback) is fallback


def test_fixed_width_lease_never_gives_up() -> None:
    async def main() -> None:
        async with FixedWidthAllocator(1).admit(QueryDemand("a", 4, 2)) as lease:
            await lease.acquire()
            assert lease.report(VoteTally.from_counts([1, 1, 1]), 0.0)
            _check_protocol(lease)

    run_virtual(main)


def _check_protocol(lease: SampleLease) -> None:
    assert callable(lease.release)
