"""`GET /v1/scheduler`'s object, from a real program-aware scheduler on virtual time:
calls waiting per level and in flight per engine while they run, counters after."""

from __future__ import annotations

from typing import Any

import anyio
from prometheus_client import CollectorRegistry, Gauge
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.scheduler import FifoScheduler, ProgramAwareScheduler
from taskloom.serve.scheduler_view import scheduler_state


def _request(call_id: str) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=f"{call_id} please answer",
                           sampling=SamplingParams(max_tokens=8), program_id=call_id)


def _state(schedulers: dict[str, Any], registry: CollectorRegistry | None = None) -> Any:
    return scheduler_state(schedulers, registry or CollectorRegistry(), backend="scripted",
                           tenant="t-1", tenant_runs_in_flight=1, runs_in_flight=3)


def test_waiting_and_running_calls_are_counted_while_they_run() -> None:
    seen: dict[str, Any] = {}

    async def main() -> None:
        backend = ScriptedBackend(respond=lambda request: "one two three", per_chunk_s=1.0)
        scheduler = ProgramAwareScheduler([backend], "plas", max_in_flight=1)
        async with anyio.create_task_group() as group:
            for name in ("a", "b", "c"):
                group.start_soon(collect, scheduler.submit(_request(name)))
            await anyio.sleep(0.5)
            seen["during"] = _state({"plas": scheduler})
        seen["after"] = _state({"plas": scheduler})

    anyio.run(main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    during = seen["during"]["policies"][0]
    assert (during["policy"], during["counters"]) == ("plas", True)
    assert (during["running"], during["queued"], sum(during["queued_per_level"])) == (1, 2, 2)
    assert [engine["in_flight"] for engine in during["engines"]] == [1]
    after = seen["after"]["policies"][0]
    assert (after["running"], after["queued"]) == (0, 0)
    assert after["engines"][0]["finished_calls"] == 3
    assert after["engines"][0]["in_flight"] == 0


def test_a_scheduler_without_counters_says_so() -> None:
    fifo = FifoScheduler(ScriptedBackend())
    assert _state({"fifo": fifo})["policies"] == [{"policy": "fifo", "counters": False}]


def test_the_engine_totals_come_from_the_servers_metrics() -> None:
    registry = CollectorRegistry()
    Gauge("taskloom_llm_calls_in_flight", "calls", registry=registry).set(4)
    state = _state({}, registry)
    assert state["engine"] == {"backend": "scripted", "calls_in_flight": 4.0,
                               "prompt_tokens": 0.0, "generated_tokens": 0.0}
    assert (state["tenant"], state["tenant_runs_in_flight"], state["runs_in_flight"]) == (
        "t-1", 1, 3)
