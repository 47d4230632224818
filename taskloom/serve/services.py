"""What one server holds for its whole life: the engine, one runtime (one scheduler per
policy), the run store, the metrics and the runs in flight."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from types import ModuleType

from taskloom.backends.factory import open_backend
from taskloom.orchestrator.scheduler.registry import DEFAULT_POLICY
from taskloom.orchestrator.store import RunStore
from taskloom.runtime import Runtime
from taskloom.serve.config import ServeConfig, ServeConfigError
from taskloom.serve.manager import RunManager
from taskloom.serve.metrics import MeteredBackend, ServeMetrics
from taskloom.telemetry import open_tracer, served_model
from taskloom.tools.registry import ImportPolicy, Tool, ToolRegistry, default_registry


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
        async with open_backend(
            config.backend, model=config.model, base_url=config.base_url
        ) as engine:
            tracer = open_tracer(config.trace, default_model=config.model or served_model(engine))
            runtime = Runtime(MeteredBackend(engine, metrics), tools=server_tools(config),
                              store=store, policy=config.policy or DEFAULT_POLICY,
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


def server_tools(config: ServeConfig) -> ToolRegistry:
    """The built-ins, plus every `Tool` defined in the modules of `--tools`."""
    tools = default_registry(root=config.tools_root, allowed_hosts=config.allow_hosts,
                             import_policy=ImportPolicy(prefixes=config.allow_import))
    for module_name in config.tool_modules:
        for found in _tools_in(vars(tool_module(module_name)).values()):
            tools.register(found)
    return tools


def tool_module(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except Exception as exc:  # any failure of the operator's module stops the start
        raise ServeConfigError(f"--tools {name}: cannot import it: {exc}") from exc


def _tools_in(values: Iterable[object]) -> list[Tool]:
    return [value for value in values if isinstance(value, Tool)]
