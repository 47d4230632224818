"""The server's Prometheus metrics: runs by status, calls queued per scheduler level and
in flight, preemptions, tokens, node latency, and what finished runs used (their
accounting, and how many stopped at a budget); with several engines (`--engine`, `--ray`), each
engine's health, load and prefix-hit rate, and the calls moved off failed engines. Each
server has its own registry."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskloom.backends.base import Backend, Chunk, GenerateRequest, kv_capacity_of
from taskloom.backends.engine_pool import EnginePool
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.scheduler import Scheduler

_ENDED = (NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED)


class ServeMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls_in_flight = Gauge(
            "taskloom_llm_calls_in_flight", "LLM calls in the engine now", registry=self.registry)
        self.tokens = Counter(
            "taskloom_tokens", "Tokens through the engine", ["kind"], registry=self.registry)
        self.node_latency = Histogram(
            "taskloom_node_latency_seconds", "Time from a node's start to its end",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=self.registry,
        )
        self.runs_in_flight = Gauge(
            "taskloom_runs_in_flight", "Runs executing in this server now",
            registry=self.registry)
        self._node_started: dict[tuple[str, str], float] = {}
        self.run_tokens = Counter(
            "taskloom_run_tokens", "Tokens used by finished runs, by kind (cached_prompt: "
            "the prompt tokens served from the prefix cache)", ["kind"], registry=self.registry)
        self.run_calls = Counter(
            "taskloom_run_calls", "Calls made by finished runs, by kind (llm, tool)", ["kind"],
            registry=self.registry)
        self.run_seconds = Counter(
            "taskloom_run_seconds", "Seconds spent by finished runs' calls: tool (running "
            "tools), engine (LLM calls after admission), queue (waiting for admission)",
            ["kind"], registry=self.registry)
        self.runs_budget_exceeded = Counter(
            "taskloom_runs_budget_exceeded", "Runs stopped by a budget, by the limit crossed",
            ["limit"], registry=self.registry)

    def watch(
        self,
        counts: Callable[[], Mapping[str, int]],
        schedulers: Callable[[], Mapping[str, Scheduler]],
    ) -> None:
        """Read the store's run counts and the schedulers' queues at each scrape."""
        self.registry.register(_LiveCollector(counts, schedulers))

    def watch_engines(self, pool: EnginePool) -> None:
        """Read each engine's health and load at each scrape."""
        self.registry.register(_EnginesCollector(pool))

    def observe(self, event: NodeEvent) -> None:
        key = (event.run_id, event.node_id)
        if event.status is NodeStatus.RUNNING:
            self._node_started[key] = event.at_s
        elif event.status in _ENDED and key in self._node_started:
            self.node_latency.observe(max(0.0, event.at_s - self._node_started.pop(key)))

    def run_ended(self, result: RunResult) -> None:
        """Count a finished run's accounting."""
        totals = result.totals()
        for kind in ("prompt", "cached_prompt", "generated"):
            self.run_tokens.labels(kind).inc(totals[f"{kind}_tokens"])
        for kind in ("llm", "tool"):
            self.run_calls.labels(kind).inc(totals[f"{kind}_calls"])
        for kind in ("tool", "engine", "queue"):
            self.run_seconds.labels(kind).inc(max(0.0, totals[f"{kind}_s"]))
        if result.status is RunStatus.BUDGET_EXCEEDED and result.budget_exceeded is not None:
            self.runs_budget_exceeded.labels(result.budget_exceeded.limit).inc()

    def forget_run(self, run_id: str) -> None:
        for key in [k for k in self._node_started if k[0] == run_id]:
            del self._node_started[key]


class _LiveCollector(Collector):
    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        schedulers: Callable[[], Mapping[str, Scheduler]],
    ) -> None:
        self._counts = counts
        self._schedulers = schedulers

    def collect(self) -> Iterator[Metric]:
        runs = GaugeMetricFamily("taskloom_runs", "Stored runs by status", labels=["status"])
        for status in ("running", "succeeded", "failed", "cancelled", "budget_exceeded"):
            runs.add_metric([status], self._counts().get(status, 0))
        yield runs
        queued = GaugeMetricFamily(
            "taskloom_calls_queued", "LLM calls waiting, per policy and scheduler level",
            labels=["policy", "level"])
        running = GaugeMetricFamily(
            "taskloom_scheduler_calls_running", "LLM calls a scheduler has in the engine",
            labels=["policy"])
        preemptions = GaugeMetricFamily(
            "taskloom_preemptions", "Calls preempted so far", labels=["policy"])
        # Per scheduler, so that a scrape shows which scheduler every run's calls went
        # through: one policy, one scheduler, whatever the client.
        started = CounterMetricFamily(
            "taskloom_scheduler_call_attempts",
            "Times a scheduler let a call into the engine (a preempted call counts again)",
            labels=["policy"])
        finished = CounterMetricFamily(
            "taskloom_scheduler_calls_finished",
            "LLM calls a scheduler saw through to their last token", labels=["policy"])
        for policy, scheduler in self._schedulers().items():
            stats = _stats_of(scheduler)
            if stats is None:
                continue
            for level, size in enumerate(stats.level_sizes):
                queued.add_metric([policy, str(level)], size)
            running.add_metric([policy], stats.running)
            preemptions.add_metric([policy], stats.preemptions)
            started.add_metric([policy], sum(engine.attempts for engine in stats.engines))
            finished.add_metric([policy], sum(engine.finished_calls for engine in stats.engines))
        yield from (queued, running, preemptions, started, finished)


class _EnginesCollector(Collector):
    def __init__(self, pool: EnginePool) -> None:
        self._pool = pool

    def collect(self) -> Iterator[Metric]:
        labels = ["engine", "url"]
        up = GaugeMetricFamily(
            "taskloom_engine_in_service", "1 if the engine passed its last health check",
            labels=labels)
        hit_rate = GaugeMetricFamily(
            "taskloom_engine_prefix_hit_rate",
            "Share of the engine's prompt tokens its prefix cache served", labels=labels)
        counters = {
            field: CounterMetricFamily(f"taskloom_engine_{field}", help_text, labels=labels)
            for field, help_text in (
                ("calls", "Calls that finished on the engine"),
                ("attempts", "Streams sent to the engine (a moved call has several)"),
                ("failed_attempts", "Streams the engine broke"),
                ("prompt_tokens", "Prompt tokens the engine read"),
                ("cached_prompt_tokens", "Prompt tokens its prefix cache served"),
                ("generated_tokens", "Tokens the engine generated"),
            )
        }
        for engine, in_service in zip(self._pool.engines, self._pool.in_service(), strict=True):
            label_values = [str(engine.index), engine.name]
            total = engine.backend.total
            up.add_metric(label_values, float(in_service))
            cached, prompt = total.cached_prompt_tokens, total.prompt_tokens
            hit_rate.add_metric(label_values, cached / prompt if prompt else 0.0)
            for field, family in counters.items():
                family.add_metric(label_values, getattr(total, field))
        moved = CounterMetricFamily(
            "taskloom_call_moves", "Calls resumed on another engine after theirs failed")
        moved.add_metric([], self._pool.moved_calls)
        yield from (up, hit_rate, *counters.values(), moved)


def _stats_of(scheduler: Any) -> Any:
    # Wrappers (the shared sample pool) keep the program-aware scheduler as `inner`;
    # a scheduler without `stats` (a test double) reports nothing.
    for candidate in (scheduler, getattr(scheduler, "inner", None)):
        stats = getattr(candidate, "stats", None)
        if callable(stats):
            return stats()
    return None


class MeteredBackend:
    """A backend that counts the calls in it and the tokens through it."""

    def __init__(self, inner: Backend, metrics: ServeMetrics) -> None:
        self.inner = inner
        self.name = inner.name
        self._metrics = metrics

    def capacity(self) -> int:
        return self.inner.capacity()

    def kv_capacity_tokens(self) -> int | None:
        return kv_capacity_of(self.inner)

    async def close(self) -> None:
        await self.inner.close()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self._metrics.calls_in_flight.inc()
        prompt = generated = 0
        try:
            async for chunk in self.inner.generate(request):
                prompt, generated = chunk.prompt_tokens, chunk.generated_tokens
                yield chunk
        finally:
            self._metrics.calls_in_flight.dec()
            self._metrics.tokens.labels("prompt").inc(prompt)
            self._metrics.tokens.labels("generated").inc(generated)
