"""The server's Prometheus metrics: runs by status, calls queued per scheduler level and
in flight, preemptions, tokens, and node latency. Each server has its own registry."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus
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

    def watch(
        self,
        counts: Callable[[], Mapping[str, int]],
        schedulers: Callable[[], Mapping[str, Scheduler]],
    ) -> None:
        """Read the store's run counts and the schedulers' queues at each scrape."""
        self.registry.register(_LiveCollector(counts, schedulers))

    def observe(self, event: NodeEvent) -> None:
        key = (event.run_id, event.node_id)
        if event.status is NodeStatus.RUNNING:
            self._node_started[key] = event.at_s
        elif event.status in _ENDED and key in self._node_started:
            self.node_latency.observe(max(0.0, event.at_s - self._node_started.pop(key)))

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
        for status in ("running", "succeeded", "failed", "cancelled"):
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
