"""The scheduler's report of each watched call: waits, service, level, priority,
preemptions and engine, read from its record as it ends (on virtual time)."""

from __future__ import annotations

import math
from collections.abc import Callable

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.call_reports import CallReport, CallWatch, call_watch_of
from taskloom.orchestrator.scheduler.queues import QueueConfig

ANSWER = " ".join(f"w{i}" for i in range(1, 13))


def _call(call_id: str) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=f"{call_id} please",
                           sampling=SamplingParams(max_tokens=100), program_id=call_id)


def _preempting_run(watched: tuple[str, ...]) -> dict[str, CallReport]:
    """A long call (one word per time unit) preempted at t=3.5 by a short one (MLFQ,
    one slot); the long one resumes when the short one ends at t=15.5."""
    backend = ScriptedBackend(respond=lambda request: ANSWER, delay_s=1.0, per_chunk_s=1.0)
    reports: dict[str, CallReport] = {}

    async def main() -> None:
        scheduler = ProgramAwareScheduler(
            [backend], "mlfq", max_in_flight=1,
            queues=QueueConfig(boundaries_s=(2.0,), beta=math.inf),
        )
        for call_id in watched:
            scheduler.call_watch.watch(call_id, lambda r: reports.__setitem__(r.call_id, r))

        async def short_call() -> None:
            await anyio.sleep(3.5)
            await collect(scheduler.submit(_call("short")))

        async with anyio.create_task_group() as group:
            group.start_soon(collect, scheduler.submit(_call("long")))
            group.start_soon(short_call)

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    return reports


def test_a_preempted_call_reports_its_wait_service_level_and_preemption() -> None:
    reports = _preempting_run(("long", "short"))
    long, short = reports["long"], reports["short"]
    assert long.preemptions == 1
    assert (long.preempted_at_s, long.resumed_at_s) == ((3.5,), (15.5,))
    assert long.ended_at_s == pytest.approx(15.5 + 9.0)
    assert long.queued_s == pytest.approx(12.0)  # t=3.5..15.5, behind the short call
    assert long.service_s == pytest.approx(3.5 + 9.0)
    assert (long.level, long.priority) == (1, 1)  # demoted past 2 s; the engine saw 1
    assert (long.engine, long.engine_name) == (0, "scripted")
    assert short.preemptions == 0
    assert (short.preempted_at_s, short.resumed_at_s) == ((), ())
    assert short.queued_s == pytest.approx(0.0)
    assert short.service_s == pytest.approx(12.0)
    assert (short.level, short.engine) == (1, 0)  # it too ran past 2 s, with no one to yield to


def test_only_watched_calls_are_reported() -> None:
    assert set(_preempting_run(("short",))) == {"short"}
    assert _preempting_run(()) == {}


def test_every_listener_of_a_call_hears_it_once_and_an_unwatched_one_not() -> None:
    backend = ScriptedBackend(respond=lambda request: "ok")
    heard: list[tuple[str, str]] = []

    def listener(name: str) -> Callable[[CallReport], None]:
        return lambda report: heard.append((name, report.call_id))

    tracer, ledger, gone = listener("tracer"), listener("ledger"), listener("gone")

    async def main() -> None:
        scheduler = ProgramAwareScheduler([backend], "mlfq")
        for each in (tracer, ledger, gone):
            scheduler.call_watch.watch("c", each)
        scheduler.call_watch.unwatch("c", gone)
        scheduler.call_watch.unwatch("c", gone)  # again: nothing to do
        await collect(scheduler.submit(_call("c")))
        await collect(scheduler.submit(_call("c")))  # heard once: the first call only

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    assert heard == [("tracer", "c"), ("ledger", "c")]


def test_the_call_watch_is_found_through_wrapping_schedulers() -> None:
    scheduler = ProgramAwareScheduler([ScriptedBackend()], "fcfs")

    class Wrapper:
        def __init__(self, inner: object) -> None:
            self.inner = inner

    assert call_watch_of(Wrapper(Wrapper(scheduler))) is scheduler.call_watch
    assert isinstance(scheduler.call_watch, CallWatch)
    assert call_watch_of(Wrapper(object())) is None
