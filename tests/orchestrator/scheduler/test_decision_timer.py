"""The router's own cost: a timer attached only when measuring, counting every pass."""

from __future__ import annotations

import anyio
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.factory import BackendName, open_backend
from taskloom.backends.sim import SimEngineConfig, StepCostModel
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.decision_timer import DecisionTimer


def test_a_timer_adds_up_its_passes() -> None:
    timer = DecisionTimer()
    for _ in range(3):
        with timer:
            sum(range(1000))
    assert timer.passes == 3
    assert timer.cpu_ns >= 0 and timer.wall_ns > 0
    assert timer.cpu_us_per(0) is None and timer.wall_us_per(0) is None
    assert timer.wall_us_per(2) == timer.wall_ns / 2000


ENGINE = SimEngineConfig(max_num_seqs=2)
STEP = StepCostModel(0.01, 0.0, 0.0, 0.0)


def run_calls(timer: DecisionTimer | None, calls: int) -> ProgramAwareScheduler:
    async def main() -> ProgramAwareScheduler:
        async with open_backend(BackendName.SIM, config=ENGINE, cost=STEP) as first, \
                open_backend(BackendName.SIM, config=ENGINE, cost=STEP) as second:
            engines = [first, second]
            scheduler = ProgramAwareScheduler(engines, "plas")
            assert scheduler.decision_timer is None  # untimed unless a timer is attached
            scheduler.decision_timer = timer
            async with anyio.create_task_group() as group:
                for index in range(calls):
                    request = GenerateRequest(f"c{index}", prompt="hello " * 20,
                                              sampling=SamplingParams(max_tokens=4),
                                              program_id=f"p{index % 2}")
                    group.start_soon(collect, scheduler.submit(request))
            return scheduler

    scheduler: ProgramAwareScheduler = anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    return scheduler


def test_an_attached_timer_counts_every_decision_pass() -> None:
    timer = DecisionTimer()
    scheduler = run_calls(timer, 6)
    assert sum(engine.finished_calls for engine in scheduler.stats().engines) == 6
    # Each call is decided on at least when it arrives and when it finishes.
    assert timer.passes >= 12
    untimed = run_calls(None, 6)
    assert untimed.decision_timer is None
    assert sum(engine.finished_calls for engine in untimed.stats().engines) == 6
