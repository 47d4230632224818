"""What one server holds for its whole life: the engine, one runtime (one scheduler per
policy), the run store, the metrics and the runs in flight."""

from __future__ import annotations

import importlib
import sys
from collections.abc import AsyncIterator, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from types import ModuleType

from taskloom.backends.base import Backend
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.factory import open_backend
from taskloom.backends.pool_choice import open_pool
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY
from taskloom.orchestrator.store import RunStore
from taskloom.runtime import Runtime
from taskloom.serve.config import ServeConfig, ServeConfigError
from taskloom.serve.manager import RunManager
from taskloom.serve.metrics import MeteredBackend, ServeMetrics
from taskloom.telemetry import open_tracer, served_model
from taskloom.tools.registry import ImportPolicy, Tool, ToolRegistry, default_registry
from taskloom.tools.sources import SourceConnections, SourceUnavailable, ToolSet
from taskloom.tools.sources.declared import StandingSources


@dataclass(frozen=True)
class Services:
    runtime: Runtime
    store: RunStore
    manager: RunManager
    metrics: ServeMetrics


@asynccontextmanager
async def open_services(config: ServeConfig) -> AsyncIterator[Services]:
    metrics = ServeMetrics()
    store = RunStore(config.store)
    try:
        async with _open_engines(config, metrics) as engines, \
                SourceConnections.open() as sources:
            # Opened now, so that a server that cannot start stops the start, and its
            # tools check the specs sent in; each run asks the pool again (and a server
            # that died is started again).
            tools = server_tools(config).with_sources(await _mcp_tool_sets(config, sources))
            standing = StandingSources(config.mcp_servers, config.mcp_config_dir)
            prices = config.prices and config.prices.for_engine(config.model)
            tracer = open_tracer(config.trace, default_model=config.model or served_model(engines))
            runtime = Runtime(engines, tools=tools, store=store,
                              policy=config.policy or DEFAULT_POLICY,
                              budget=config.budget, prices=prices, sources=sources,
                              standing=standing if config.mcp_servers else None,
                              tracer=tracer)
            metrics.watch(store.counts, runtime.schedulers)
            manager = RunManager(runtime, store, metrics, config.limits.max_runs_in_flight)
            try:
                async with manager:
                    yield Services(runtime, store, manager, metrics)
            finally:
                tracer.close()
    finally:
        store.close()


@asynccontextmanager
async def _open_engines(
    config: ServeConfig, metrics: ServeMetrics
) -> AsyncIterator[Backend | EnginePool]:
    """The one engine, or the pool of `--engine`s or `--ray` replicas, each metered."""
    def metered(engine: Backend) -> Backend:
        return MeteredBackend(engine, metrics)

    opened: AbstractAsyncContextManager[Backend | EnginePool] | None
    ray = config.ray_settings()
    opened = open_pool(config.backend, model=config.model, base_url=config.base_url,
                       engines=config.engines, ray=ray, wrap=metered, progress=_say,
                       **(config.backend_options() if ray else {}))
    if opened is None:
        opened = open_backend(config.backend, model=config.model, base_url=config.base_url,
                              **config.backend_options())
    async with opened as engines:
        if isinstance(engines, EnginePool):
            metrics.watch_engines(engines)
            yield engines
        else:
            yield metered(engines)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def server_tools(config: ServeConfig) -> ToolRegistry:
    """The built-ins, plus every `Tool` defined in the modules of `--tools`."""
    tools = default_registry(root=config.tools_root, allowed_hosts=config.allow_hosts,
                             import_policy=ImportPolicy(prefixes=config.allow_import))
    for module_name in config.tool_modules:
        for found in _tools_in(vars(tool_module(module_name)).values()):
            tools.register(found)
    return tools


async def _mcp_tool_sets(config: ServeConfig, sources: SourceConnections) -> list[ToolSet]:
    """The `--mcp-config` servers, opened for the server's whole life."""
    try:
        return await sources.connect_all(config.mcp_servers, base_dir=config.mcp_config_dir)
    except SourceUnavailable as exc:
        raise ServeConfigError(f"--mcp-config: {exc}") from None


def tool_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # any failure of the operator's module stops the start
        raise ServeConfigError(f"--tools {name}: cannot import it: {exc}") from exc


def _tools_in(values: Iterable[object]) -> list[Tool]:
    return [value for value in values if isinstance(value, Tool)]
