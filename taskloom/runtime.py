"""The embedded Python API, and the one wiring place: the node kinds every program may
use are registered here (policies, backends and tools have their own registries, which
this module ties together in a `Runtime`)."""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio

from taskloom.backends.base import Backend
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.factory import BackendName, open_backend
from taskloom.backends.pool_choice import RaySettings, open_pool
from taskloom.errors import ToolError
from taskloom.orchestrator.budget_meter import BudgetMeter
from taskloom.orchestrator.certainty import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.events import EventSink, ignore_events
from taskloom.orchestrator.executor import Executor
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.orchestrator.keep_warm import ToolDurations
from taskloom.orchestrator.kinds.llm import LLMKind
from taskloom.orchestrator.kinds.map import MapKind
from taskloom.orchestrator.kinds.registry import node_kinds
from taskloom.orchestrator.kinds.tool import ToolKind
from taskloom.orchestrator.prices import PriceTable, models_called
from taskloom.orchestrator.result import NodeResult, RunResult, RunStatus
from taskloom.orchestrator.scheduler import Scheduler
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY, make_scheduler
from taskloom.orchestrator.store import RunNotFound, RunStore
from taskloom.planners.kind import PlanKind
from taskloom.program.budget import Budget, tightest
from taskloom.program.load import loads
from taskloom.program.models import Program
from taskloom.runtime_engines import with_engines_report
from taskloom.telemetry import NO_TRACER, Tracer, open_tracer, served_model
from taskloom.tools.registry import ToolRegistry, default_registry
from taskloom.tools.sources import SourceConnections
from taskloom.tools.sources.declared import StandingSources

for _kind in (LLMKind(), ToolKind(), MapKind(), PlanKind()):
    node_kinds.register(_kind)


class Runtime:
    """Runs programs on one backend, or on the engines of an `EnginePool` (each run then
    reports the load it put on each engine and the calls that moved, as `engines`).

    Which scheduling policy a run uses: `run(policy=...)`, else the program's own
    `policy:`, else the runtime's `policy` (default `plas`). Each policy gets one
    scheduler over the backend, shared by every run that uses it. A runtime built around
    your own `scheduler` sends every run through that one. `tracer` records each run as
    OpenTelemetry spans (see `taskloom.telemetry`); the caller closes it.

    `keep_warm`: tool durations shared by its runs; when given, LLM calls that a tool
    call and another LLM call follow ask the engine to keep their KV warm for the tool's
    expected duration (see `orchestrator.keep_warm`; only the simulated engine honours
    it). Off by default.

    `budget` caps every run (a server's cap): a run's own budget, and the program's,
    can only tighten it. `prices` adds what each node cost to every result.
    """

    def __init__(
        self,
        backend: Backend | EnginePool,
        *,
        tools: ToolRegistry | None = None,
        scheduler: Scheduler | None = None,
        policy: str = DEFAULT_POLICY,
        store: RunStore | None = None,
        sample_slots: int | None = None,
        budget: Budget | None = None,
        prices: PriceTable | None = None,
        sources: SourceConnections | None = None,
        standing: StandingSources | None = None,
        tracer: Tracer = NO_TRACER,
        keep_warm: ToolDurations | None = None,
    ) -> None:
        self.tracer = tracer
        self.keep_warm = keep_warm
        self.engines = backend if isinstance(backend, EnginePool) else None
        self.backend = backend.backends[0] if isinstance(backend, EnginePool) else backend
        self.budget = budget
        self.prices = prices
        self.tools = tools if tools is not None else default_registry()
        # Where MCP servers are opened, once per runtime: those that programs declare,
        # and the `standing` ones every program may use.
        self.sources = sources
        self.standing = standing
        self.store = store
        self.policy = policy
        self._own_scheduler = scheduler
        self._sample_slots = sample_slots
        self._schedulers: dict[str, Scheduler] = {}
        if scheduler is None:
            self.scheduler_for(policy)  # an unknown policy fails here, not at the first run

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        backend: BackendName | str = BackendName.VLLM,
        *,
        model: str | None = None,
        base_url: str | None = None,
        tools: ToolRegistry | None = None,
        store: RunStore | None = None,
        policy: str = DEFAULT_POLICY,
        sample_slots: int | None = None,
        engines: Sequence[str] | None = None,
        budget: Budget | None = None,
        prices: PriceTable | None = None,
        trace: bool | None = None,
        ray: bool | str | None = None,
        replicas: int | None = None,
        **backend_options: Any,
    ) -> AsyncIterator[Runtime]:
        """Open the backend by name, and close it when the block ends.

        `sample_slots`: see `shared_sample_pool`; None leaves each self-consistency
        node sampling on its own. `engines`: the URLs of several OpenAI-compatible
        servers ("openai" only, instead of `base_url`), opened as one `EnginePool`.
        `ray`: True or a Ray address (True: `RAY_ADDRESS`, else a local Ray); the
        backend then runs as `replicas` Ray actors (default 1), one `EnginePool`, each
        replica opened with `model` and `backend_options`. The
        MCP servers programs declare are opened as first needed and closed with the
        runtime. `trace`: send every run's spans over OTLP/HTTP (to
        OTEL_EXPORTER_OTLP_ENDPOINT, else localhost:4318); None: only when that
        variable is set."""
        pool_to_open = open_pool(backend, model=model, base_url=base_url, engines=engines,
                                 ray=RaySettings.of(ray, replicas), **backend_options)
        if pool_to_open is not None:
            async with pool_to_open as pool, SourceConnections.open() as sources:
                tracer = open_tracer(trace, default_model=model)
                try:
                    yield cls(pool, tools=tools, store=store, policy=policy,
                              sample_slots=sample_slots, budget=budget, prices=prices,
                              sources=sources, tracer=tracer)
                finally:
                    tracer.close()
            return
        async with open_backend(
            backend, model=model, base_url=base_url, **backend_options
        ) as engine, SourceConnections.open() as sources:
            tracer = open_tracer(trace, default_model=model or served_model(engine))
            try:
                yield cls(
                    engine, tools=tools, store=store, policy=policy,
                    sample_slots=sample_slots, budget=budget, prices=prices, sources=sources,
                    tracer=tracer,
                )
            finally:
                tracer.close()

    def scheduler_for(self, policy: str) -> Scheduler:
        """The scheduler of `policy` over this runtime's backend (made once)."""
        if self._own_scheduler is not None:
            return self._own_scheduler
        if policy not in self._schedulers:
            engines = self.engines.backends if self.engines else [self.backend]
            scheduler = make_scheduler(policy, engines)
            if self.engines is not None:
                self.engines.watch(scheduler)
            self._schedulers[policy] = shared_sample_pool(scheduler, self._sample_slots)
        return self._schedulers[policy]

    def schedulers(self) -> dict[str, Scheduler]:
        """The scheduler of each policy used so far, by policy name."""
        if self._own_scheduler is not None:
            return {self.policy: self._own_scheduler}
        return dict(self._schedulers)

    async def run(
        self,
        program: Program,
        inputs: Mapping[str, Any] | None = None,
        *,
        policy: str | None = None,
        timeout: float | None = None,
        cancel: anyio.Event | None = None,
        on_event: EventSink = ignore_events,
        run_id: str | None = None,
        restored: Mapping[str, NodeResult] | None = None,
        budget: Budget | None = None,
    ) -> RunResult:
        """Check and run `program`, and return its result.

        Node failures, a `timeout` and setting `cancel` all end in the result's status;
        in-flight LLM calls are aborted and every finished node is kept. A cancellation
        from outside (the caller's own cancel scope) aborts the same way and propagates;
        the partial result is then in the store, if the runtime has one.

        With a store, each node's result is committed the moment it finishes, before its
        dependents start, so a run cut short by a crash can be `resume`d. `restored`:
        nodes that finished before (see `Executor`).

        The run's budget is the tightest of `budget`, the program's `budget:` and the
        runtime's. Crossing a limit aborts every call in flight at once, and the run
        ends `budget_exceeded` with every finished node kept; `result.budget_exceeded`
        says which limit. A model missing from the runtime's price table raises
        `PriceError` before anything runs.
        """
        tools = await self.tools_for(program)
        graph = compile_program(program, tools)
        resolved = resolve_inputs(program, inputs or {})  # refuse bad inputs before starting
        prices = self._prices_for(program)
        limits = tightest([self.budget, program.budget, budget])
        meter = BudgetMeter(limits) if limits is not None else None
        if meter is not None and restored:
            meter.add_finished(restored.values())
        chosen = policy or program.policy or self.policy
        scheduler = self.scheduler_for(chosen)
        run_id = run_id or uuid.uuid4().hex[:12]
        checkpoint = None
        if self.store is not None:
            self.store.begin(run_id, program, resolved, chosen)
            checkpoint = functools.partial(self.store.checkpoint, run_id)
        executor = Executor(
            graph, scheduler=scheduler, tools=tools, run_id=run_id, on_event=on_event,
            checkpoint=checkpoint, restored=restored, meter=meter, prices=prices,
            tracer=self.tracer, keep_warm=self.keep_warm,
        )
        result: RunResult | None = None
        try:
            result = await _run_until_stopped(executor, resolved, timeout, cancel, meter)
            if self.engines is not None:
                result = await with_engines_report(result, self.engines, scheduler)
            return result
        finally:
            if self.store is not None:
                final = result or executor.snapshot(RunStatus.CANCELLED, "run cancelled")
                self.store.save(final)

    def _prices_for(self, program: Program) -> PriceTable | None:
        if self.prices is None:
            return None
        prices = self.prices.for_engine(getattr(self.backend, "model", None) or None)
        prices.check(models_called(program))
        return prices

    async def tools_for(self, program: Program) -> ToolRegistry:
        """The runtime's tools, plus those of its standing MCP servers and of the ones
        `program` declares (each opened once per runtime, again if it died)."""
        if not program.mcp_servers and self.standing is None:
            return self.tools
        if self.sources is None:
            raise ToolError(
                f"program '{program.name}' uses MCP servers, which need a runtime that "
                "can open them: use `Runtime.open(...)` or pass `sources=`"
            )
        tool_sets = []
        if self.standing is not None:
            tool_sets += await self.sources.connect_all(
                self.standing.declared, base_dir=self.standing.base_dir
            )
        tool_sets += await self.sources.connect_all(
            program.mcp_servers, base_dir=spec_folder(program)
        )
        return self.tools.with_sources(tool_sets)

    async def resume(
        self,
        run_id: str,
        *,
        timeout: float | None = None,
        cancel: anyio.Event | None = None,
        on_event: EventSink = ignore_events,
    ) -> RunResult:
        """Continue a stored run that a crash cut short. Nodes that finished are kept
        and not run again; nodes that were in flight run again from their start (a
        `plan` node or a vote as a whole: its planner, tasks and samples)."""
        if self.store is None:
            raise ValueError("resume needs a runtime with a store")
        row = self.store.get(run_id)
        if row is None:
            raise RunNotFound(run_id)
        if row.spec_text is None:
            raise ValueError(f"run '{run_id}' kept no spec text to rebuild its program from")
        program = loads(row.spec_text, filename=row.spec_file or f"<run {run_id}>")
        restored = self.store.finished_nodes(run_id, program.nodes.keys())
        return await self.run(
            program, row.inputs, policy=row.policy, timeout=timeout, cancel=cancel,
            on_event=on_event, run_id=run_id, restored=restored,
        )


async def _run_until_stopped(
    executor: Executor,
    inputs: Mapping[str, Any],
    timeout: float | None,
    cancel: anyio.Event | None,
    meter: BudgetMeter | None = None,
) -> RunResult:
    finished: list[RunResult] = []
    reason = f"run timed out after {timeout:g}s" if timeout is not None else ""
    async with anyio.create_task_group() as group:
        if meter is not None:
            # A crossed limit stops the run the way a timeout does: every call in
            # flight is aborted and the finished nodes are kept.
            meter.on_exceeded = group.cancel_scope.cancel
            if meter.budget.wall_s is not None:
                group.start_soon(_stop_after_wall_limit, meter, meter.budget.wall_s)

        async def execute() -> None:
            with anyio.move_on_after(timeout):
                finished.append(await executor.run(inputs))
            group.cancel_scope.cancel()

        async def stop_when_cancelled(event: anyio.Event) -> None:
            nonlocal reason
            await event.wait()
            reason = "run cancelled"
            group.cancel_scope.cancel()

        group.start_soon(execute)
        if cancel is not None:
            group.start_soon(stop_when_cancelled, cancel)
    overrun = meter.exceeded if meter is not None else None
    if overrun is not None:
        ended = finished[0] if finished else executor.snapshot(RunStatus.BUDGET_EXCEEDED)
        return dataclasses.replace(
            ended, status=RunStatus.BUDGET_EXCEEDED, error=overrun.describe(),
            budget_exceeded=overrun,
        )
    if finished:
        return finished[0]
    return executor.snapshot(RunStatus.CANCELLED, reason or "run cancelled")


async def _stop_after_wall_limit(meter: BudgetMeter, wall_s: float) -> None:
    started = anyio.current_time()
    await anyio.sleep(wall_s)
    meter.wall_time_up(anyio.current_time() - started)


def spec_folder(program: Program) -> Path | None:
    """The folder of the file `program` was loaded from (where its stdio MCP servers
    start), if it came from one."""
    source = getattr(program, "_source", None)
    path = Path(getattr(source, "file", "") or "")
    return path.parent.resolve() if path.name and path.is_file() else None


def shared_sample_pool(scheduler: Scheduler, slots: int | None) -> Scheduler:
    """`scheduler`, with `slots` sample slots shared by every self-consistency node it
    serves (a `CertaintyAllocator`: gang admission, certainty-driven reallocation,
    hopeless queries cut while crowded). None: `scheduler` as it is."""
    if slots is None:
        return scheduler
    return CertaintyAwareScheduler(scheduler, CertaintyAllocator(slots))


async def run_program(
    program: Program,
    inputs: Mapping[str, Any] | None = None,
    *,
    backend: Backend | BackendName | str = BackendName.VLLM,
    model: str | None = None,
    base_url: str | None = None,
    tools: ToolRegistry | None = None,
    policy: str | None = None,
    timeout: float | None = None,
    budget: Budget | None = None,
) -> RunResult:
    """Run one program; open (and close) the backend when given by name. The policy is
    `policy`, else the program's own, else the default."""
    if not isinstance(backend, str):
        async with SourceConnections.open() as sources:
            return await Runtime(backend, tools=tools, sources=sources).run(
                program, inputs, policy=policy, timeout=timeout, budget=budget
            )
    async with Runtime.open(backend, model=model, base_url=base_url, tools=tools) as runtime:
        return await runtime.run(program, inputs, policy=policy, timeout=timeout, budget=budget)


def run_sync(
    program: Program,
    inputs: Mapping[str, Any] | None = None,
    **options: Any,
) -> RunResult:
    """Blocking `run_program`, on asyncio (the in-process vLLM engine needs it)."""

    async def main() -> RunResult:
        return await run_program(program, inputs, **options)

    return anyio.run(main, backend="asyncio")
