"""Budgets through `Runtime.run`: each limit stops the run the moment it is crossed,
aborts what is in flight, keeps every finished node, and says which limit it was; the
accounting of every node adds up to the run's totals. On the scripted backend, in
virtual time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BudgetExceeded
from taskloom.orchestrator.budget_meter import BudgetMeter
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.orchestrator.prices import PriceError, PriceTable
from taskloom.orchestrator.result import ACCOUNTING_FIELDS, NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.fifo import FifoScheduler
from taskloom.orchestrator.store import RunStore, StoredStatus
from taskloom.orchestrator.tool_call import call_tool
from taskloom.program.budget import Budget
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


def _tools() -> ToolRegistry:
    @tool
    async def slow_add(a: int, b: int) -> int:
        """Add after a second.

        Args:
            a: one number.
            b: the other.
        """
        await anyio.sleep(1.0)
        return a + b

    registry = default_registry()
    registry.register(slow_add)
    return registry


# `first` and `tool` finish early; the map's six slow calls are in flight when a limit
# is crossed. Each call answers 4 words (4 generated tokens) after a 1 s wait, and its
# prompt is 2 or 3 words.
SPEC = """
name: budgeted
nodes:
  tool: {kind: tool, tool: slow_add, args: {a: 1, b: 2}}
  first: {kind: llm, prompt: "say hi"}
  fan:
    kind: map
    over: [1, 2, 3, 4, 5, 6]
    after: [first, tool]
    node: {kind: llm, prompt: "item {{ item }} please"}
  tools:
    kind: map
    over: [1, 2, 3, 4]
    after: [first, tool]
    node: {kind: tool, tool: slow_add, args: {a: "{{ item }}", b: 1}}
outputs:
  first: "{{ first }}"
"""


def _backend() -> ScriptedBackend:
    return ScriptedBackend(respond=lambda r: "one two three four", delay_s=1.0, per_chunk_s=1.0)


async def _run(budget: Budget | None, backend: ScriptedBackend | None = None,
               **options: Any) -> tuple[RunResult, ScriptedBackend]:
    backend = backend or _backend()
    runtime = Runtime(backend, tools=_tools(), **options)
    return await runtime.run(loads(SPEC), budget=budget), backend


def _assert_stopped_cleanly(result: RunResult, backend: ScriptedBackend, limit: str) -> None:
    assert result.status is RunStatus.BUDGET_EXCEEDED
    overrun = result.budget_exceeded
    assert overrun is not None and overrun.limit == limit
    assert overrun.used > overrun.allowed or (limit == "wall_s" and overrun.used >= overrun.allowed)
    assert result.error == overrun.describe() and limit in result.error
    assert backend.in_flight == set()  # nothing is left running in the engine
    # The nodes that finished before the limit are kept, with their outputs.
    assert result.nodes["first"].status is NodeStatus.SUCCEEDED
    assert result.nodes["first"].output == "one two three four"
    assert result.nodes["tool"].output == 3


@pytest.mark.anyio
async def test_an_unlimited_run_succeeds_and_its_nodes_add_up_to_its_totals() -> None:
    result, _ = await _run(None)
    assert result.status is RunStatus.SUCCEEDED
    totals = result.totals()
    for name in ACCOUNTING_FIELDS:
        assert totals[name] == pytest.approx(sum(getattr(n, name) for n in result.nodes.values()))
    assert totals["llm_calls"] == 7 and totals["tool_calls"] == 5
    assert totals["generated_tokens"] == 7 * 4
    assert totals["prompt_tokens"] == 2 + 6 * 3
    fan = result.nodes["fan"]
    # Each call: 1 s before its first word, then 1 s per later word = 4 s in the engine.
    assert fan.llm_calls == 6 and fan.engine_s == pytest.approx(6 * 4.0)
    assert fan.queue_s == 0.0 and result.nodes["tools"].tool_s == pytest.approx(4 * 1.0)
    assert result.cost_usd is None and result.budget_exceeded is None


@pytest.mark.anyio
async def test_llm_calls_stop_the_run_before_the_call_past_the_limit_is_sent() -> None:
    result, backend = await _run(Budget(llm_calls=4))
    _assert_stopped_cleanly(result, backend, "llm_calls")
    assert result.budget_exceeded is not None and result.budget_exceeded.used == 5
    assert len(backend.seen) == 4 and result.llm_calls == 4
    assert len(backend.aborted) == 3  # the map's three calls in flight
    assert result.nodes["fan"].status is NodeStatus.CANCELLED


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("limit", "budget"),
    [
        ("tokens", Budget(tokens=30)),
        ("prompt_tokens", Budget(prompt_tokens=10)),
        ("generated_tokens", Budget(generated_tokens=8)),
    ],
)
async def test_tokens_are_counted_as_they_stream(limit: str, budget: Budget) -> None:
    result, backend = await _run(budget)
    _assert_stopped_cleanly(result, backend, limit)
    # Stopped part-way through the map's answers, not after them.
    assert backend.aborted and result.nodes["fan"].status is NodeStatus.CANCELLED
    assert result.generated_tokens < 7 * 4


@pytest.mark.anyio
async def test_tool_calls_stop_the_run_before_the_call_past_the_limit() -> None:
    calls: list[int] = []

    @tool
    def counted(n: int) -> int:
        """Count a call.

        Args:
            n: anything.
        """
        calls.append(n)
        return n

    registry = _tools()
    registry.register(counted)
    spec = SPEC.replace("tool: slow_add, args: {a: \"{{ item }}\", b: 1}",
                        "tool: counted, args: {n: \"{{ item }}\"}")
    backend = _backend()
    result = await Runtime(backend, tools=registry).run(loads(spec), budget=Budget(tool_calls=3))
    _assert_stopped_cleanly(result, backend, "tool_calls")
    # The first tool node and two of the map's four were let through; the fourth call
    # was refused, and the run cancelled before any other could start.
    assert result.totals()["tool_calls"] == 3
    assert len(calls) <= 2


@pytest.mark.anyio
async def test_wall_s_stops_the_run_on_the_runs_clock() -> None:
    result, backend = await _run(Budget(wall_s=5.5))
    _assert_stopped_cleanly(result, backend, "wall_s")
    assert result.wall_s == pytest.approx(5.5)
    assert result.budget_exceeded is not None and result.budget_exceeded.used == pytest.approx(5.5)


@pytest.mark.anyio
async def test_the_tightest_of_runtime_program_and_run_budgets_applies() -> None:
    spec = SPEC.replace("name: budgeted", "name: budgeted\nbudget: {llm_calls: 6, tokens: 999}")
    backend = _backend()
    runtime = Runtime(backend, tools=_tools(), budget=Budget(llm_calls=5))
    result = await runtime.run(loads(spec), budget=Budget(tokens=1000))
    assert result.budget_exceeded is not None
    assert result.budget_exceeded.limit == "llm_calls" and result.budget_exceeded.allowed == 5


@pytest.mark.anyio
async def test_a_plan_node_is_stopped_by_its_replans() -> None:
    spec = """
name: replans
nodes:
  answer:
    kind: plan
    question: "what is 1 + 2?"
    tools: [slow_add]
    max_replans: 50
outputs:
  answer: "{{ answer }}"
"""

    def respond(request: GenerateRequest) -> str:
        purpose = request.call_id.split("/")[-2]
        if purpose.startswith("plan"):
            return '1. slow_add(a=1, b=2)\n2. join()\n'
        return "Thought: not sure\nAction: Replan(try again)"

    backend = ScriptedBackend(respond=respond, delay_s=0.5)
    result = await Runtime(backend, tools=_tools()).run(
        loads(spec), budget=Budget(llm_calls=7))
    assert result.status is RunStatus.BUDGET_EXCEEDED
    node = result.nodes["answer"]
    # Planner and joiner of rounds 1-3, and the fourth planner; the fourth joiner, the
    # 8th call, is refused.
    assert node.llm_calls == 7 and len(backend.seen) == 7
    assert node.status is NodeStatus.CANCELLED and backend.in_flight == set()
    # A plan's tool calls count in its node; its tasks are kept, as results of their own.
    assert node.tool_calls == 4 and result.nodes["answer/plan4/1"].output == 3
    assert result.nodes["answer/plan4/1"].tool_calls == 0


@pytest.mark.anyio
async def test_a_votes_samples_count_as_they_finish() -> None:
    spec = """
name: vote
nodes:
  solve:
    kind: llm
    prompt: "what is 6 * 7?"
    n: 8
    aggregate: vote
    early_stop: {rule: none}
outputs:
  answer: "{{ solve.answer }}"
"""

    def respond(request: GenerateRequest) -> str:
        index = int(request.call_id.rsplit("/s", 1)[1])
        return " ".join(["hmm"] * (2 + 3 * index)) + " 42"

    backend = ScriptedBackend(respond=respond, per_chunk_s=1.0)
    result = await Runtime(backend).run(loads(spec), budget=Budget(generated_tokens=40))
    assert result.status is RunStatus.BUDGET_EXCEEDED
    assert result.budget_exceeded is not None and result.budget_exceeded.limit == "generated_tokens"
    assert backend.aborted and backend.in_flight == set()
    node = result.nodes["solve"]
    # Stopped while the long samples were still writing: far from the 8 samples' total.
    full = sum(3 + 3 * index for index in range(8))
    assert 40 < node.generated_tokens < full


@pytest.mark.anyio
async def test_the_stored_run_keeps_the_status_the_limit_and_the_finished_nodes(
    tmp_path: Path,
) -> None:
    store = RunStore(tmp_path)
    result, _ = await _run(Budget(llm_calls=4), store=store)
    row = store.get(result.run_id)
    assert row is not None and row.status is StoredStatus.BUDGET_EXCEEDED
    assert store.runs(status=StoredStatus.BUDGET_EXCEEDED)[0].run_id == result.run_id
    loaded = store.load(result.run_id)
    assert loaded.status is RunStatus.BUDGET_EXCEEDED
    assert loaded.budget_exceeded == result.budget_exceeded
    assert loaded.nodes["first"] == result.nodes["first"]
    assert loaded.totals() == pytest.approx(result.totals())


@pytest.mark.anyio
async def test_prices_add_a_cost_per_node_and_in_total() -> None:
    prices = PriceTable.from_data(
        {"default": {"prompt": 1.0, "cached_prompt": 0.5, "generated": 2.0}})
    result, _ = await _run(None, prices=prices)
    first = result.nodes["first"]
    assert first.cost_usd == pytest.approx((2 * 1.0 + 4 * 2.0) / 1e6)
    assert result.nodes["tool"].cost_usd == 0.0
    assert result.cost_usd == pytest.approx((20 * 1.0 + 28 * 2.0) / 1e6)
    assert result.totals()["cost_usd"] == result.cost_usd


@pytest.mark.anyio
async def test_a_model_missing_from_the_price_table_fails_before_the_run() -> None:
    prices = PriceTable.from_data({"big-model": {"prompt": 1.0, "generated": 2.0}})
    backend = _backend()
    with pytest.raises(PriceError, match="no price for the engine's own model"):
        await Runtime(backend, tools=_tools(), prices=prices).run(loads(SPEC))
    assert backend.seen == []


@pytest.mark.anyio
async def test_a_refused_call_without_a_cancelling_runtime_fails_saying_why() -> None:
    ledger = CallLedger(meter=BudgetMeter(Budget(tool_calls=1)))
    registry = _tools()
    await call_tool(registry.get("calculator"), {"expression": "1 + 1"}, ledger)
    with pytest.raises(BudgetExceeded, match="tool_calls 2 > 1"):
        await call_tool(registry.get("calculator"), {"expression": "1 + 1"}, ledger)
    assert ledger.tool_calls == 1


@pytest.mark.anyio
@pytest.mark.parametrize("policy", ["fcfs", "plas"])
async def test_queue_time_is_the_wait_for_admission_and_engine_time_the_rest(
    policy: str,
) -> None:
    backend = _backend()
    scheduler = ProgramAwareScheduler([backend], policy, max_in_flight=2)
    runtime = Runtime(backend, tools=_tools(), scheduler=scheduler)
    result = await runtime.run(loads(SPEC))
    _assert_queued_then_served(result, slots=2)


def _assert_queued_then_served(result: RunResult, slots: int) -> None:
    fan = result.nodes["fan"]
    # Six calls of 4 s in the engine, `slots` at a time: each call's time is its wait
    # for a slot, then exactly 4 s after its admission. (Exact waits would be 0, 0, 4,
    # 4, 8, 8 s with two slots, if every item arrived at once; an item whose prompt
    # renders in a worker thread can arrive later on the mock clock, and wait less.)
    assert fan.engine_s == pytest.approx(6 * 4.0)
    most = sum(4.0 * (index // slots) for index in range(6))
    assert 0.0 < fan.queue_s <= most + 1e-9
    assert result.nodes["first"].queue_s == 0.0


@pytest.mark.anyio
async def test_a_fifo_scheduler_reports_queue_time_too() -> None:
    backend = _backend()
    runtime = Runtime(backend, tools=_tools(), scheduler=FifoScheduler(backend, max_in_flight=3))
    result = await runtime.run(loads(SPEC))
    _assert_queued_then_served(result, slots=3)
