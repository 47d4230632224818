"""The server's metrics: every run's calls counted under the one scheduler of its policy."""

from __future__ import annotations

import re

import anyio
import pytest
from prometheus_client import generate_latest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.serve.metrics import MeteredBackend, ServeMetrics

# The quickstart's shape: three calls fan out, a fourth reads them.
SPEC = """
name: fan_out
inputs: {topic: {type: string}}
nodes:
  advantage: {kind: llm, prompt: "One advantage of {{ inputs.topic }}."}
  drawback: {kind: llm, prompt: "One drawback of {{ inputs.topic }}."}
  fact: {kind: llm, prompt: "One fact about {{ inputs.topic }}."}
  summary: {kind: llm, prompt: "Sum up: {{ advantage }} {{ drawback }} {{ fact }}"}
outputs: {summary: "{{ summary }}"}
"""

pytestmark = pytest.mark.anyio


def _samples(metrics: ServeMetrics, name: str) -> dict[str, float]:
    text = generate_latest(metrics.registry).decode()
    return {m.group(1): float(m.group(2))
            for m in re.finditer(rf'^{name}\{{policy="([^"]+)"\}} (\S+)$', text, re.M)}


async def test_three_concurrent_runs_show_their_calls_in_one_scheduler() -> None:
    metrics = ServeMetrics()
    runtime = Runtime(MeteredBackend(ScriptedBackend(), metrics), policy="plas")
    metrics.watch(dict, runtime.schedulers)
    program = loads(SPEC)
    calls: list[int] = []

    async def one(topic: str) -> None:
        result = await runtime.run(program, {"topic": topic})
        assert result.status.value == "succeeded"
        calls.append(sum(node.llm_calls for node in result.nodes.values()))

    async with anyio.create_task_group() as group:
        for topic in ("wind", "tides", "solar"):
            group.start_soon(one, topic)
    assert len(calls) == 3 and calls[0] > 0
    assert _samples(metrics, "taskloom_scheduler_calls_finished_total") == {"plas": sum(calls)}
    assert _samples(metrics, "taskloom_scheduler_call_attempts_total") == {"plas": sum(calls)}


async def test_runs_of_another_policy_get_a_scheduler_of_their_own() -> None:
    metrics = ServeMetrics()
    runtime = Runtime(MeteredBackend(ScriptedBackend(), metrics), policy="plas")
    metrics.watch(dict, runtime.schedulers)
    program = loads(SPEC)
    await runtime.run(program, {"topic": "wind"}, policy="fcfs")
    finished = _samples(metrics, "taskloom_scheduler_calls_finished_total")
    assert finished == {"plas": 0, "fcfs": 4}  # four LLM calls, none under plas
