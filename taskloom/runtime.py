"""The embedded Python API: a Runtime ties a backend, a scheduler and tools together and
runs programs on them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import anyio

from taskloom.backends.base import Backend
from taskloom.backends.factory import BackendName, open_backend
from taskloom.orchestrator.certainty import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.events import EventSink, ignore_events
from taskloom.orchestrator.executor import Executor
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.orchestrator.result import RunResult, RunStatus
from taskloom.orchestrator.scheduler import Scheduler
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY, make_scheduler
from taskloom.orchestrator.store import RunStore
from taskloom.program.models import Program
from taskloom.tools.registry import ToolRegistry, default_registry


class Runtime:
    """Runs programs on one backend through one scheduler.

    Build it around a backend you opened, or use `Runtime.open(...)`, which opens and
    closes the backend for you. Without a `scheduler`, LLM calls go through the default
    policy (`DEFAULT_POLICY`, program-aware PLAS).
    """

    def __init__(
        self,
        backend: Backend,
        *,
        tools: ToolRegistry | None = None,
        scheduler: Scheduler | None = None,
        store: RunStore | None = None,
    ) -> None:
        self.backend = backend
        self.tools = tools if tools is not None else default_registry()
        self.scheduler = (
            scheduler if scheduler is not None else make_scheduler(DEFAULT_POLICY, [backend])
        )
        self.store = store
        self.last_result: RunResult | None = None

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
        **backend_options: Any,
    ) -> AsyncIterator[Runtime]:
        """`sample_slots`: see `shared_sample_pool`; None leaves each self-consistency
        node sampling on its own."""
        async with open_backend(backend, model=model, base_url=base_url,
                                **backend_options) as engine:
            scheduler = shared_sample_pool(make_scheduler(policy, [engine]), sample_slots)
            yield cls(engine, tools=tools, store=store, scheduler=scheduler)

    async def run(
        self,
        program: Program,
        inputs: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
        on_event: EventSink = ignore_events,
        run_id: str | None = None,
    ) -> RunResult:
        """Check and run `program`. Node failures and a `timeout` end in the result's
        status; a cancellation from outside propagates after in-flight calls are
        aborted, with the partial result in `self.last_result` (and the store)."""
        graph = compile_program(program, self.tools)
        resolved = resolve_inputs(program, inputs or {})  # refuse bad inputs before starting
        executor = Executor(
            graph, scheduler=self.scheduler, tools=self.tools, run_id=run_id, on_event=on_event
        )
        result: RunResult | None = None
        try:
            with anyio.move_on_after(timeout):
                result = await executor.run(resolved)
            if result is None:
                result = executor.snapshot(RunStatus.CANCELLED, f"run timed out after {timeout:g}s")
            return result
        finally:
            final = result if result is not None else executor.snapshot(
                RunStatus.CANCELLED, "run cancelled"
            )
            self.last_result = final
            if self.store is not None:
                self.store.save(final)


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
    timeout: float | None = None,
) -> RunResult:
    """Run one program; open (and close) the backend when given by name."""
    policy = program.policy or DEFAULT_POLICY
    if not isinstance(backend, str):
        scheduler = make_scheduler(policy, [backend])
        runtime = Runtime(backend, tools=tools, scheduler=scheduler)
        return await runtime.run(program, inputs, timeout=timeout)
    async with Runtime.open(
        backend, model=model, base_url=base_url, tools=tools, policy=policy
    ) as runtime:
        return await runtime.run(program, inputs, timeout=timeout)
