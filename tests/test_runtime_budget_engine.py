"""On the embedded engine: a `plan` node allowed many replans, held to a tight
`llm_calls` budget, stops at the budget, and the engine is left with no request of the
run still running (a long answer that was in flight beside it is aborted)."""

from __future__ import annotations

import anyio
import pytest

from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.result import NodeStatus, RunStatus
from taskloom.program.budget import Budget
from taskloom.program.load import loads
from taskloom.runtime import Runtime

pytestmark = pytest.mark.engine

SPEC = """
name: runaway_plan
defaults: {max_tokens: 96, temperature: 0, seed: 0}
nodes:
  long:
    kind: llm
    prompt: "Write a very long story about a lighthouse keeper, chapter by chapter."
    max_tokens: 600
  solve:
    kind: plan
    question: "What is 12 times 7, plus 30 divided by 5?"
    tools: [calculator]
    format: json
    max_replans: 20
outputs:
  answer: "{{ solve }}"
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_runaway_plan_stops_at_its_llm_calls_budget(engine: VLLMBackend) -> None:
    result = await Runtime(engine).run(loads(SPEC), budget=Budget(llm_calls=2))
    assert result.status is RunStatus.BUDGET_EXCEEDED, result.error
    overrun = result.budget_exceeded
    assert overrun is not None and overrun.limit == "llm_calls" and overrun.used == 3
    # The long answer and the planner were sent; the joiner, the third call, was not.
    assert result.nodes["long"].llm_calls + result.nodes["solve"].llm_calls == 2
    assert result.nodes["solve"].status is NodeStatus.CANCELLED
    with anyio.fail_after(10):  # an abort reaches the engine's loop a step later
        while engine.num_unfinished_requests():
            await anyio.sleep(0.05)
    assert not any(rid.startswith(result.run_id) for rid in engine.in_flight_request_ids())
    if result.nodes["long"].status is NodeStatus.CANCELLED:
        assert result.nodes["long"].generated_tokens < 600  # cut part-way
