"""`GET /v1/scheduler`: the shared schedulers' state as the dashboard shows it.

The schedulers and the engine are shared by every tenant, so this view holds only
counts summed over all of them (calls waiting per level, calls in flight per engine,
preemptions, prefix-cache hits); it names no run, program or call, and the one
tenant-specific figure is the asking tenant's own runs in flight. The same counts are
on `/metrics` already.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry

from taskloom.orchestrator.scheduler import Scheduler


def scheduler_state(
    schedulers: Mapping[str, Scheduler],
    registry: CollectorRegistry,
    *,
    backend: str,
    tenant: str,
    tenant_runs_in_flight: int,
    runs_in_flight: int,
) -> dict[str, Any]:
    """The JSON object of `GET /v1/scheduler`."""
    return {
        "tenant": tenant,
        "tenant_runs_in_flight": tenant_runs_in_flight,
        "runs_in_flight": runs_in_flight,
        "engine": {
            "backend": backend,
            "calls_in_flight": _sample(registry, "taskloom_llm_calls_in_flight"),
            "prompt_tokens": _sample(registry, "taskloom_tokens_total", kind="prompt"),
            "generated_tokens": _sample(registry, "taskloom_tokens_total", kind="generated"),
        },
        "policies": [
            _policy_state(name, scheduler) for name, scheduler in sorted(schedulers.items())
        ],
    }


def _policy_state(name: str, scheduler: Scheduler) -> dict[str, Any]:
    counting = _counting_scheduler(scheduler)
    if counting is None:  # a scheduler that keeps no counters (FIFO, a test double)
        return {"policy": name, "counters": False}
    stats = counting.stats()
    in_flight = _in_flight_per_engine(counting, len(stats.engines))
    return {
        "policy": name,
        "counters": True,
        "queued": stats.queued,
        "running": stats.running,
        "queued_per_level": list(stats.level_sizes),
        "preemptions": stats.preemptions,
        "demotions": stats.demotions,
        "promotions": stats.promotions,
        "prefix_hit_rate": stats.prefix_cache_hit_rate,
        "engines": [
            {
                "engine": index,
                "alive": index not in stats.dead_engines,
                "in_flight": in_flight[index],
                "attempts": tally.attempts,
                "finished_calls": tally.finished_calls,
                "preemptions": tally.preemptions,
                "failures": tally.failures,
                "prompt_tokens": tally.prompt_tokens,
                "cached_prompt_tokens": tally.cached_prompt_tokens,
                "prefix_hit_rate": tally.prefix_cache_hit_rate,
            }
            for index, tally in enumerate(stats.engines)
        ],
    }


def _counting_scheduler(scheduler: Scheduler) -> Any:
    # Wrappers (the shared sample pool) keep the program-aware scheduler as `inner`.
    for candidate in (scheduler, getattr(scheduler, "inner", None)):
        if callable(getattr(candidate, "stats", None)):
            return candidate
    return None


def _in_flight_per_engine(scheduler: Any, engines: int) -> list[int | None]:
    running = getattr(scheduler, "running_call_ids", None)
    if not callable(running):
        return [None] * engines
    return [len(running(index)) for index in range(engines)]


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value
