"""Several engines behind one runtime, opened as one `async with`:

    async with open_engines(["http://gpu1:8000", "http://gpu2:8000"]) as pool:
        runtime = Runtime(pool)

Each engine is an OpenAI-compatible server (`OpenAIBackend`). While the pool is open, a
task probes every engine (`health.py`); whoever routes calls (`watch`) is told which
engines are down and which came back. Each engine counts what went through it, so a run
can report the load it put on each (`usage`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio

from taskloom.backends.base import Backend
from taskloom.backends.engine_usage import CountedBackend, UsageTally
from taskloom.backends.health import (
    EngineHealthListener,
    HealthMonitor,
    HealthSettings,
    Probe,
    probe_of,
)
from taskloom.backends.openai_http import OpenAIBackend
from taskloom.errors import BackendError


@dataclass(frozen=True)
class PooledEngine:
    index: int
    name: str  # its URL, for reports
    backend: CountedBackend


class EnginePool:
    """Engines 0..n-1, each counted and health-checked while the pool is open.

    - `names`: one per engine, for reports (default: each backend's name and index).
    - `probes`: one per engine, or None for each backend's own (`probe_of`).
    - `wrap`: applied to each backend, inside the counting (the server meters them).

    Opening probes every engine once: an engine that does not answer starts out of
    service, and a pool where none answers refuses to open (`BackendError`).
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        *,
        names: Sequence[str] | None = None,
        probes: Sequence[Probe | None] | None = None,
        health: HealthSettings | None = None,
        wrap: Callable[[Backend], Backend] | None = None,
    ) -> None:
        if not backends:
            raise ValueError("an engine pool needs at least one engine")
        names = names or [f"{backend.name}#{i}" for i, backend in enumerate(backends)]
        probes = probes if probes is not None else [probe_of(b) for b in backends]
        if not len(backends) == len(names) == len(probes):
            raise ValueError("an engine pool needs one name and one probe per engine")
        self.engines = tuple(
            PooledEngine(index, name, CountedBackend(wrap(backend) if wrap else backend))
            for index, (name, backend) in enumerate(zip(names, backends, strict=True))
        )
        self.monitor = HealthMonitor(probes, health or HealthSettings())
        self.moved_calls = 0  # calls resumed on another engine, counted by the runs' reports
        self._stack: AsyncExitStack | None = None

    @property
    def backends(self) -> list[Backend]:
        return [engine.backend for engine in self.engines]

    def watch(self, scheduler: object) -> None:
        """Tell `scheduler` (or the scheduler it wraps, as `inner`) of each health
        check; a scheduler that cannot take engines out of service is left alone."""
        for candidate in (scheduler, getattr(scheduler, "inner", None)):
            if isinstance(candidate, EngineHealthListener):
                self.monitor.watch(candidate)
                return

    def in_service(self) -> list[bool]:
        return [self.monitor.in_service(engine.index) for engine in self.engines]

    def down_reasons(self) -> list[str | None]:
        return list(self.monitor.down_reasons)

    def usage(self, program_id: str) -> list[UsageTally]:
        """Each engine's tally for the program, collected (and forgotten) now."""
        return [engine.backend.take_program(program_id) for engine in self.engines]

    async def check_now(self) -> None:
        """Probe every engine now, not at the next interval."""
        await self.monitor.check_all()

    async def __aenter__(self) -> EnginePool:
        await self.monitor.check_all()
        reasons = self.monitor.down_reasons
        if all(reason is not None for reason in reasons):
            raise BackendError("no engine answers: " + "; ".join(
                f"{engine.name}: {reason}" for engine, reason in zip(
                    self.engines, reasons, strict=True)))
        async with AsyncExitStack() as stack:
            group = await stack.enter_async_context(anyio.create_task_group())
            group.start_soon(self.monitor.check_forever)
            stack.callback(group.cancel_scope.cancel)
            self._stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()


@asynccontextmanager
async def open_engines(
    urls: Sequence[str],
    *,
    model: str | None = None,
    health: HealthSettings | None = None,
    wrap: Callable[[Backend], Backend] | None = None,
    **options: Any,
) -> AsyncIterator[EnginePool]:
    """An `EnginePool` of OpenAI-compatible servers at `urls`; `options` go to each
    `OpenAIBackend` (api_key, max_in_flight, timeout_s). No `model`: the first model
    listed by the first server that answers (every engine must serve the same model)."""
    if not urls:
        raise ValueError("open_engines needs at least one URL")
    backends = [OpenAIBackend(url, model, **options) for url in urls]
    async with AsyncExitStack() as stack:
        for backend in backends:
            stack.push_async_callback(backend.close)  # a backend never opened is closed too
        chosen = model or await _first_served_model(backends)
        for backend in backends:
            backend.model = chosen
            await stack.enter_async_context(backend)
        names = [backend.base_url for backend in backends]
        async with EnginePool(backends, names=names, health=health, wrap=wrap) as pool:
            yield pool


async def _first_served_model(backends: Sequence[OpenAIBackend]) -> str:
    errors = []
    for backend in backends:
        try:
            return (await backend.served_models())[0]
        except BackendError as error:
            errors.append(str(error))
    raise BackendError("no engine answers: " + "; ".join(errors))
