"""Several engines behind one runtime (`EnginePool`), on virtual time (trio + MockClock):
each engine's own admission, calls moved off an engine that fails, an engine that comes
back used again, and every engine gone."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from health_switch import Switch
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.health import HealthSettings
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BackendError
from taskloom.orchestrator.scheduler import ProgramAwareScheduler

T = TypeVar("T")
ANSWER = "one two three four five six seven eight"
CHECKS = HealthSettings(interval_s=1.0, timeout_s=0.5)


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def request(call_id: str) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=f"{call_id} please",
                           sampling=SamplingParams(max_tokens=16), program_id="p")


def scripted(per_chunk_s: float = 1.0, **options: object) -> ScriptedBackend:
    return ScriptedBackend(respond=lambda r: ANSWER, per_chunk_s=per_chunk_s, **options)  # type: ignore[arg-type]


async def answers(scheduler: ProgramAwareScheduler, ids: list[str]) -> dict[str, str]:
    texts: dict[str, str] = {}

    async def one(call_id: str) -> None:
        texts[call_id] = (await collect(scheduler.submit(request(call_id)))).text

    async with anyio.create_task_group() as group:
        for call_id in ids:
            group.start_soon(one, call_id)
    return texts


def test_every_engine_keeps_its_own_cap_and_the_rest_wait() -> None:
    engines = [scripted(max_in_flight=2), scripted(max_in_flight=3)]

    async def main() -> tuple[tuple[int, ...], int, list[int]]:
        peaks = [0, 0]
        async with EnginePool(engines, health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends, max_in_flight=None)
            pool.watch(scheduler)
            async with anyio.create_task_group() as group:
                group.start_soon(answers, scheduler, [f"p/c{i}" for i in range(10)])
                await anyio.sleep(0.5)
                queued = scheduler.stats().queued
                while scheduler.stats().running:  # sampled between engine steps
                    peaks = [max(p, len(e.in_flight)) for p, e in zip(peaks, engines, strict=True)]
                    await anyio.sleep(0.5)
            assert sum(tally.calls for tally in pool.usage("p")) == 10
            return scheduler.engine_caps(), queued, peaks

    caps, queued, peaks = run_virtual(main)
    assert caps == (2, 3) and queued == 5  # 10 calls, 2 + 3 running, 5 waiting here
    assert peaks == [2, 3]


def test_eight_parallel_calls_use_both_engines() -> None:
    engines = [scripted(), scripted()]

    async def main() -> dict[str, str]:
        async with EnginePool(engines, health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends)
            pool.watch(scheduler)
            texts = await answers(scheduler, [f"p/c{i}" for i in range(8)])
            assert [tally.calls for tally in pool.usage("p")] == [4, 4]
            return texts

    texts = run_virtual(main)
    assert set(texts.values()) == {ANSWER}


def test_a_failed_health_check_moves_the_engines_calls_with_their_text() -> None:
    hanging = scripted(per_chunk_s=1000.0)  # answers a word, then never another
    other, probe = scripted(), Switch()

    async def main() -> tuple[dict[str, str], list[str]]:
        async with EnginePool([hanging, other], probes=[probe, None],
                              health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends)
            pool.watch(scheduler)
            async with anyio.create_task_group() as group:
                texts: dict[str, str] = {}

                async def answer_all() -> None:
                    texts.update(await answers(scheduler, ["p/a", "p/b"]))

                group.start_soon(answer_all)
                await anyio.sleep(0.1)
                probe.up = False
            moves = scheduler.take_moves("p")
            assert pool.in_service() == [False, True]
            return texts, [f"{m.call_id}:{m.from_engine}->{m.to_engine}" for m in moves]

    texts, moves = run_virtual(main)
    assert texts == {"p/a": ANSWER, "p/b": ANSWER}
    assert moves == ["p/a:0->1"]
    assert "p/a" in hanging.aborted and not hanging.in_flight
    assert [r.resume_text for r in other.seen if r.call_id == "p/a"] == ["one "]


def test_an_engine_that_comes_back_is_used_again() -> None:
    engines = [scripted(), scripted()]
    probe = Switch()

    async def main() -> list[list[int]]:
        calls: list[list[int]] = []  # per engine, while engine 0 is down, then back
        async with EnginePool(engines, probes=[probe, None], health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends)
            pool.watch(scheduler)
            probe.up = False
            await anyio.sleep(1.5)
            await answers(scheduler, ["p/down0", "p/down1"])
            calls.append([tally.calls for tally in pool.usage("p")])
            probe.up = True
            await anyio.sleep(1.0)
            assert pool.in_service() == [True, True]
            assert scheduler.stats().dead_engines == ()
            await answers(scheduler, ["p/up0", "p/up1"])
            calls.append([tally.calls for tally in pool.usage("p")])
        return calls

    assert run_virtual(main) == [[0, 2], [1, 1]]


def test_an_engine_declared_dead_by_a_failed_call_is_revived_by_a_passing_check() -> None:
    engines = [scripted(fail_after_chunks=2), scripted()]

    async def main() -> tuple[tuple[int, ...], tuple[int, ...], str]:
        async with EnginePool(engines, probes=[Switch(), None], health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends)
            pool.watch(scheduler)
            texts = await answers(scheduler, ["p/a"])
            dead = scheduler.stats().dead_engines
            await anyio.sleep(1.0)
            return dead, scheduler.stats().dead_engines, texts["p/a"]

    dead_after_failure, dead_after_check, text = run_virtual(main)
    assert (dead_after_failure, dead_after_check, text) == ((0,), (), ANSWER)


def test_when_every_engine_fails_its_check_calls_fail_with_an_engine_error() -> None:
    probes = [Switch(), Switch()]

    async def main() -> None:
        async with EnginePool([scripted(), scripted()], probes=probes, health=CHECKS) as pool:
            scheduler = ProgramAwareScheduler(pool.backends)
            pool.watch(scheduler)
            for probe in probes:
                probe.up = False
            await anyio.sleep(1.5)
            await collect(scheduler.submit(request("p/late")))

    with pytest.raises(BackendError, match="every engine has failed"):
        run_virtual(main)


def test_a_pool_where_no_engine_answers_refuses_to_open() -> None:
    probes = [Switch(), Switch()]
    for probe in probes:
        probe.up = False

    async def main() -> None:
        async with EnginePool([scripted(), scripted()], names=["a", "b"], probes=probes):
            pass

    with pytest.raises(BackendError, match="no engine answers: a: probe refused; b: probe"):
        run_virtual(main)
