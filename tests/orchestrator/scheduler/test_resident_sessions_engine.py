"""plas-pause on the real embedded engine: the policy reads the engine's KV from vLLM,
and with a budget that holds one session at a time, sessions take turns (one paused at
its tool call while another runs) and end with the answers they have under plas.

Runs on the session's float32 `engine` fixture, where greedy answers do not depend on
the batch a call shares."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.result import RunStatus
from taskloom.orchestrator.scheduler.registry import make_scheduler
from taskloom.orchestrator.scheduler.resident_sessions import (
    DEFAULT_KV_FRACTION,
    ResidentSessionScheduler,
)
from taskloom.program.load import loads
from taskloom.runtime import Runtime

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

SESSION = """
name: session_{n}
defaults: {{temperature: 0, max_tokens: 12}}
nodes:
  ask: {{kind: llm, prompt: "Name a number between {n} and {m}."}}
  tool: {{kind: tool, tool: calculator, args: {{expression: "{{{{ ask | length }}}} * 3"}}}}
  again:
    kind: llm
    prompt: "You said {{{{ ask }}}}. Its length times three is {{{{ tool }}}}. Say why."
outputs: {{first: "{{{{ ask }}}}", second: "{{{{ again }}}}"}}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def sessions() -> list[Any]:
    return [loads(SESSION.format(n=n, m=n + 10)) for n in (2, 5, 9)]


async def run_all(runtime: Runtime) -> list[dict[str, Any]]:
    results = []
    async with anyio.create_task_group() as group:
        for index, program in enumerate(sessions()):
            group.start_soon(_run_into, runtime, program, results, index)
    assert all(r.status is RunStatus.SUCCEEDED for _, r in results), results
    return [dict(r.outputs) for _, r in sorted(results, key=lambda pair: pair[0])]


async def _run_into(runtime: Runtime, program: Any, into: list[Any], index: int) -> None:
    into.append((index, await runtime.run(program)))


async def test_plas_pause_budgets_against_the_engines_own_kv(engine: VLLMBackend) -> None:
    scheduler = make_scheduler("plas-pause", [engine])
    assert isinstance(scheduler, ResidentSessionScheduler)
    kv_tokens = engine.kv_capacity_tokens()
    assert kv_tokens is not None and kv_tokens >= 2048
    assert scheduler.kv_budget_tokens == int(kv_tokens * DEFAULT_KV_FRACTION)


async def test_sessions_take_turns_within_a_small_budget_with_plas_answers(
    engine: VLLMBackend,
) -> None:
    reference = await run_all(Runtime(engine, policy="plas"))
    # Less than two sessions' working sets (each a prompt of 10-40 tokens and 12 to
    # answer), so they run one at a time; one bigger than the budget runs alone.
    one_at_a_time = ResidentSessionScheduler([engine], kv_budget_tokens=30,
                                             pause_after_s=0.0)
    paused = await run_all(Runtime(engine, scheduler=one_at_a_time))
    assert paused == reference
    assert one_at_a_time.pauses >= 1  # a session at its tool call made way for another
