"""The benchmark runner: a workload, Poisson arrivals, and policies side by side.

For every (policy, rate) point the runner builds a fresh scheduler over the engines,
starts each program at its arrival time, and records when it finishes; the program's
latency is finish minus arrival on the event loop's clock.

- On the `sim` backend every point runs in its own trio event loop on a
  `MockClock(autojump_threshold=0)`, with fresh simulated engines: time jumps to the next
  event, so hours of engine time take seconds, and a seed fixes every number.
- On a real engine (`vllm`, `openai`) the points run one after another on asyncio, in
  real time, on engines opened once (starting an engine takes minutes), so a later point
  may find an earlier one's prefixes in the engine's cache.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import anyio
from trio.testing import MockClock

from taskloom.backends.base import Backend
from taskloom.backends.engine_pool import open_engines
from taskloom.backends.factory import (
    BackendName,
    BackendSettingsError,
    backend_name,
    check_base_url,
    open_backend,
)
from taskloom.backends.sim import (
    H100_LLAMA3_8B,
    H100_LLAMA3_8B_ENGINE,
    OutputLength,
    SimBackend,
    SimEngineConfig,
    StepCostModel,
    max_tokens_output,
)
from taskloom.bench.metrics import BenchPoint, BenchRow, EngineReport, ProgramOutcome, summarize
from taskloom.bench.pooled_engines import EngineUrlsError, PooledEngines, check_engine_urls
from taskloom.bench.workloads import (
    Workload,
    WorkloadOptions,
    build_workload,
    check_workload_name,
    poisson_arrivals,
)
from taskloom.bench.workloads.base import BenchProgram
from taskloom.errors import TaskloomError
from taskloom.naming import unknown_name_message
from taskloom.orchestrator.keep_warm import ToolDurations
from taskloom.orchestrator.result import RunStatus
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.orchestrator.scheduler.policies import POLICIES
from taskloom.orchestrator.scheduler.registry import check_policy, make_scheduler, split_twin
from taskloom.program.template_limits import set_template_limits, template_limits
from taskloom.runtime import Runtime

# The scripted test double answers instantly: no benchmark runs on it.
BENCH_BACKENDS = (BackendName.SIM, BackendName.VLLM, BackendName.OPENAI)
ProgramDone = Callable[[ProgramOutcome], None]


class BenchUsageError(TaskloomError):
    """Benchmark settings that cannot run: say which and why."""


FIRST_AND_LAST = 1 << 30
"""A stream interval longer than any answer: a chunk for the first token and the last."""


def stream_interval_for(policy: str) -> int:
    """The coarsest stream interval that leaves `policy`'s run exactly as it is with a
    chunk per token.

    - A built-in policy that neither preempts nor demotes (fcfs) reads nothing between a
      call's first and last chunk: it gets only those two, and every number is the same.
    - A policy that demotes a call when a chunk shows it has passed its quantum (mlfq,
      plas, atlas), or preempts one (they and sjf-oracle: a preempted call keeps only the
      text streamed before the abort, and its next attempt redoes the rest), gets a chunk
      per token: coarser chunks moved sjf-oracle's mean latency by 7.5% on an engine
      where the scheduler preempts often (README, "simulator fast path").
    - Any other registered policy: a chunk per token, since what it reads is unknown.
    """
    built_in = POLICIES.get(split_twin(policy)[0])
    if built_in is None or built_in.preemptive or built_in.demotes:
        return 1
    return FIRST_AND_LAST


@dataclass(frozen=True)
class SimSetup:
    """The simulated engine: its limits, its step cost, how long answers are, and how it
    streams (`SimBackend`'s `stream_interval` and `fast_forward`).

    `stream_interval=None` (the default) lets `run_benchmark` pick the coarsest interval
    each policy allows (`stream_interval_for`), so that the engine sleeps over runs of
    decode steps; engines opened without a policy in view stream a chunk per token.
    """

    engine: SimEngineConfig = H100_LLAMA3_8B_ENGINE
    cost: StepCostModel = H100_LLAMA3_8B
    output_tokens: OutputLength = max_tokens_output
    stream_interval: int | None = None
    fast_forward: bool = True

    def for_policy(self, policy: str) -> SimSetup:
        """This setup with the stream interval fixed for `policy`, if not given."""
        if self.stream_interval is not None:
            return self
        return replace(self, stream_interval=stream_interval_for(policy))


@dataclass(frozen=True)
class BenchConfig:
    workload: str
    policies: tuple[str, ...]
    rates: tuple[float, ...]
    programs: int
    seed: int = 0
    backend: BackendName = BackendName.SIM
    engines: int = 1
    options: WorkloadOptions = field(default_factory=WorkloadOptions)
    sim: SimSetup = field(default_factory=SimSetup)
    model: str | None = None
    base_url: str | None = None
    # `--engine URL`s: OpenAI-compatible servers opened as one health-checked pool, each
    # call routed by the policy's balancer (the backend is then "openai").
    engine_urls: tuple[str, ...] = ()
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Keep-warm hints on LLM calls that a tool call and another LLM call follow (see
    # `orchestrator.keep_warm`); only the simulated engine honours them. Off by default.
    keep_warm: bool = False

    @property
    def points(self) -> list[tuple[str, float]]:
        return [(policy, rate) for policy in self.policies for rate in self.rates]


@dataclass(frozen=True)
class PointRun:
    """One point's row, and the scheduler that ran it (for its counters)."""

    row: BenchRow
    scheduler: Scheduler


def validate_config(config: BenchConfig) -> None:
    """Refuse settings that cannot run, before any data is read or engine started."""
    check_workload_name(config.workload)
    if not config.policies:
        raise BenchUsageError("give at least one policy")
    for policy in config.policies:
        check_policy(policy)
    if not config.rates:
        raise BenchUsageError("give at least one arrival rate")
    for rate in config.rates:
        if not rate > 0:
            raise BenchUsageError(f"an arrival rate must be > 0 programs/s, got {rate:g}")
    if config.programs < 1:
        raise BenchUsageError(f"--programs must be at least 1, got {config.programs}")
    if config.engines < 1:
        raise BenchUsageError(f"--engines must be at least 1, got {config.engines}")
    if config.engine_urls:
        try:
            check_engine_urls(config)
        except EngineUrlsError as error:
            raise BenchUsageError(str(error)) from None
    else:
        try:
            check_base_url(backend_name(config.backend), config.base_url)
        except BackendSettingsError as error:
            raise BenchUsageError(str(error)) from None
    if config.backend not in BENCH_BACKENDS:
        raise BenchUsageError(unknown_name_message("benchmark backend", config.backend,
                                                   BENCH_BACKENDS))


def run_benchmark(
    config: BenchConfig, on_program_done: ProgramDone | None = None
) -> list[BenchRow]:
    """Run every (policy, rate) point of `config`; one row per point, in order."""
    validate_config(config)
    workload = build_workload(config.workload, config.programs, config.seed, config.options)
    done = on_program_done or _ignore
    if config.backend == "sim":
        return [
            run_on_virtual_time(run_point, config, workload, policy, rate,
                                SimEngines(config.sim.for_policy(policy), config.engines),
                                done).row
            for policy, rate in config.points
        ]
    rows: list[BenchRow] = anyio.run(_run_on_real_engines, config, workload, done,
                                     backend="asyncio")
    return rows


def run_on_virtual_time(function: Callable[..., Any], *args: Any) -> Any:
    """Run `await function(*args)` in a fresh trio loop whose clock jumps to the next event.

    The same arguments give the same numbers, whatever the machine's load: the engine
    and the scheduler break ties between tasks acting at one instant by arrival, program,
    thread and call id, never by the order trio runs them in (which it randomizes);
    nothing waits on a thread, whose wall time would move the virtual clock (renders
    stay on the loop on a virtual clock, see `render_off_loop`); and
    templates get a wall-clock deadline (`VIRTUAL_TIME_RENDER_SECONDS`) that load alone
    never reaches.
    """
    clock = MockClock(autojump_threshold=0)
    limits = template_limits()
    previous = set_template_limits(replace(
        limits, max_render_seconds=max(limits.max_render_seconds, VIRTUAL_TIME_RENDER_SECONDS)))
    try:
        return anyio.run(function, *args, backend="trio",
                         backend_options={"clock": clock})
    finally:
        set_template_limits(previous)


VIRTUAL_TIME_RENDER_SECONDS = 60.0
"""A template's wall-clock render deadline on virtual time. Renders take microseconds of
CPU, but on a machine busy enough (a load of 20 on 2 cores) the default second of wall
time was, by all signs, passed by ordinary renders: programs failed that did not fail in
the same seed's other runs. Only a runaway template passes a minute."""


async def _run_on_real_engines(config: BenchConfig, workload: Workload,
                               done: ProgramDone) -> list[BenchRow]:
    if config.engine_urls:
        async with open_engines(config.engine_urls, model=config.model,
                                **config.engine_options) as pool:
            return await run_points(config, workload, PooledEngines(pool), done)
    async with open_real_engines(config) as engines:
        return await run_points(config, workload, SharedEngines(engines), done)


@asynccontextmanager
async def open_real_engines(config: BenchConfig) -> AsyncIterator[list[Backend]]:
    async with AsyncExitStack() as stack:
        engines: list[Backend] = [
            await stack.enter_async_context(open_backend(
                config.backend, model=config.model, base_url=config.base_url,
                **config.engine_options))
            for _ in range(config.engines)
        ]
        yield engines


async def run_points(
    config: BenchConfig, workload: Workload, source: EngineSource, done: ProgramDone
) -> list[BenchRow]:
    """Every point of `config`, one after another in this event loop."""
    return [
        (await run_point(config, workload, policy, rate, source, done)).row
        for policy, rate in config.points
    ]


async def run_point(
    config: BenchConfig,
    workload: Workload,
    policy: str,
    rate: float,
    source: EngineSource,
    done: ProgramDone,
    prepare: Callable[[Scheduler], None] | None = None,
) -> PointRun:
    """One (policy, rate) point: arrivals from the seed, a fresh scheduler, one row.
    `prepare` sees the scheduler before any program starts (e.g. to time it)."""
    arrivals = poisson_arrivals(rate, len(workload.programs), config.seed)
    async with source.open() as engines:
        scheduler = make_scheduler(policy, engines)
        source.watch(scheduler)
        if prepare is not None:
            prepare(scheduler)
        outcomes = await run_programs(workload, arrivals, scheduler, engines, source, done,
                                      keep_warm=config.keep_warm)
        report = source.report(engines)
    point = BenchPoint(config.workload, policy, rate, config.backend, len(engines), config.seed)
    return PointRun(summarize(point, outcomes, report), scheduler)


async def run_programs(
    workload: Workload,
    arrivals: Sequence[float],
    scheduler: Scheduler,
    engines: Sequence[Backend],
    source: EngineSource,
    done: ProgramDone,
    *,
    keep_warm: bool = False,
) -> list[ProgramOutcome]:
    """Start program i at `arrivals[i]` seconds from now on `scheduler`; wait for all to
    finish. `keep_warm`: the runtime sends keep-warm hints (`BenchConfig.keep_warm`)."""
    runtime = Runtime(engines[0], tools=workload.tools, scheduler=scheduler,
                      keep_warm=ToolDurations() if keep_warm else None)
    start = anyio.current_time()
    outcomes: list[ProgramOutcome | None] = [None] * len(workload.programs)

    async def run_one(index: int, bench_program: BenchProgram, arrival: float) -> None:
        await anyio.sleep_until(start + arrival)
        outcome = await _run_program(runtime, index, bench_program, start)
        outcomes[index] = outcome
        done(outcome)

    async with anyio.create_task_group() as group:
        for index, (bench_program, arrival) in enumerate(
            zip(workload.programs, arrivals, strict=True)
        ):
            group.start_soon(run_one, index, bench_program, arrival)
    if source.owns_engines:
        await scheduler.close()
    return [outcome for outcome in outcomes if outcome is not None]


async def _run_program(
    runtime: Runtime, index: int, bench_program: BenchProgram, start: float
) -> ProgramOutcome:
    arrived = anyio.current_time() - start
    try:
        result = await runtime.run(bench_program.program, bench_program.inputs,
                                   run_id=f"p{index:05d}")
    except Exception as error:  # a broken program must not end the whole benchmark
        return ProgramOutcome(index, bench_program.kind, arrived, anyio.current_time() - start,
                              False, 0, 0, 0, 0, f"{type(error).__name__}: {error}")
    return ProgramOutcome(
        index=index,
        kind=bench_program.kind,
        arrival_s=arrived,
        finish_s=anyio.current_time() - start,
        succeeded=result.status is RunStatus.SUCCEEDED,
        generated_tokens=result.generated_tokens,
        prompt_tokens=result.prompt_tokens,
        cached_prompt_tokens=sum(n.cached_prompt_tokens for n in result.nodes.values()),
        llm_calls=result.llm_calls,
        error=result.error,
    )


# ---------------------------------------------------------------------------- engines


class EngineSource(Protocol):
    """Where a point's engines come from, and what they report afterwards."""

    @property
    def owns_engines(self) -> bool:
        """True when each point gets engines of its own, closed when it ends."""
        ...

    def open(self) -> AbstractAsyncContextManager[Sequence[Backend]]: ...

    def watch(self, scheduler: Scheduler) -> None:
        """Let the point's scheduler hear of engines going down and coming back."""
        ...

    def report(self, engines: Sequence[Backend]) -> EngineReport: ...


class SimEngines:
    """Fresh simulated engines for every point."""

    owns_engines = True

    def __init__(self, setup: SimSetup, count: int = 1) -> None:
        self.setup = setup
        self.count = count

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Sequence[Backend]]:
        async with AsyncExitStack() as stack:
            engines = [
                await stack.enter_async_context(
                    open_backend(BackendName.SIM, config=self.setup.engine,
                                 cost=self.setup.cost, output_tokens=self.setup.output_tokens,
                                 stream_interval=self.setup.stream_interval or 1,
                                 fast_forward=self.setup.fast_forward)
                )
                for _ in range(self.count)
            ]
            yield engines

    def watch(self, scheduler: Scheduler) -> None:
        return None  # simulated engines never go down

    def report(self, engines: Sequence[Backend]) -> EngineReport:
        return sim_report(engines)


class SharedEngines:
    """Engines opened once by the caller and lent to every point, never closed here.

    Real engines do not report busy time or preemptions through the `Backend` seam,
    so those fields stay empty.
    """

    owns_engines = False

    def __init__(self, engines: Sequence[Backend]) -> None:
        if not engines:
            raise BenchUsageError("at least one engine is needed")
        self.engines = list(engines)

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Sequence[Backend]]:
        yield self.engines

    def watch(self, scheduler: Scheduler) -> None:
        return None  # no health checks: an engine that fails fails its calls

    def report(self, engines: Sequence[Backend]) -> EngineReport:
        return sim_report(engines)  # a lent SimBackend still reports; others cannot


def sim_report(engines: Sequence[Backend]) -> EngineReport:
    """Busy fraction (mean over engines), preemptions and steps of simulated engines."""
    sims = [engine for engine in engines if isinstance(engine, SimBackend)]
    if not sims:
        return EngineReport()
    stats = [sim.stats() for sim in sims]
    return EngineReport(
        busy_fraction=sum(sim.busy_fraction() for sim in sims) / len(sims),
        preemptions=sum(s.preemptions for s in stats),
        steps=sum(s.steps for s in stats),
    )


def _ignore(outcome: ProgramOutcome) -> None:
    return None
