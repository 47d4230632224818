"""`taskloom bench --engine URL ...`: a benchmark's points run on a pool of real
OpenAI-compatible engines, opened once, health-checked, each call routed by the policy's
balancer and resumed on another engine when its own fails."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from taskloom.backends.factory import BackendName
from taskloom.bench.metrics import EngineReport
from taskloom.errors import TaskloomError

if TYPE_CHECKING:
    from taskloom.backends.base import Backend
    from taskloom.backends.engine_pool import EnginePool
    from taskloom.bench.runner import BenchConfig
    from taskloom.orchestrator.scheduler.base import Scheduler


class EngineUrlsError(TaskloomError, ValueError):
    """`--engine URL`s given with settings they contradict."""


def check_engine_urls(config: BenchConfig) -> None:
    """The URLs are servers: the backend is openai, with no --base-url, one pool."""
    if config.backend != BackendName.OPENAI:
        raise EngineUrlsError(f"--engine URLs are OpenAI-compatible servers; --backend "
                              f"{config.backend} has none (leave --backend out)")
    if config.base_url:
        raise EngineUrlsError("--engine and --base-url do not mix: give every engine as "
                              "--engine URL")
    if config.engines != 1:
        raise EngineUrlsError("--engines N counts simulated engines; with --engine URLs the "
                              "engines are the URLs given")


class PooledEngines:
    """The pool's engines, lent to every point and never closed here. Each point's
    scheduler hears the pool's health checks; its report has each engine's share."""

    owns_engines = False

    def __init__(self, pool: EnginePool) -> None:
        self.pool = pool
        self._calls_before: tuple[int, ...] = ()
        self._failed_before: tuple[int, ...] = ()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[Sequence[Backend]]:
        self._calls_before = self._calls()
        self._failed_before = self._failed()
        yield self.pool.backends

    def watch(self, scheduler: Scheduler) -> None:
        self.pool.watch(scheduler)

    def report(self, engines: Sequence[Backend]) -> EngineReport:
        return EngineReport(
            engine_names=tuple(engine.name for engine in self.pool.engines),
            calls_per_engine=_minus(self._calls(), self._calls_before),
            failed_attempts_per_engine=_minus(self._failed(), self._failed_before),
        )

    def _calls(self) -> tuple[int, ...]:
        return tuple(engine.backend.total.calls for engine in self.pool.engines)

    def _failed(self) -> tuple[int, ...]:
        return tuple(engine.backend.total.failed_attempts for engine in self.pool.engines)


def _minus(now: tuple[int, ...], before: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(a - b for a, b in zip(now, before, strict=True))
