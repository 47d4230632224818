"""The LLMCompiler workloads: deterministic tasks whose reference plans run to their
reference answers, and the scripted model that follows them on the simulated engine."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest, Message, SamplingParams
from taskloom.backends.sim import H100_LLAMA3_8B, H100_LLAMA3_8B_ENGINE, approx_tokens
from taskloom.bench.workloads.llmcompiler import (
    WORKLOAD_NAMES,
    AnswerChoice,
    LLMCompilerWorkload,
    ReferenceFollower,
    ScriptedOnSim,
    answers_match,
    build_llmcompiler_workload,
    token_pieces,
)
from taskloom.orchestrator.kinds import NodeEnvironment, node_kinds
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.orchestrator.scheduler import FifoScheduler
from taskloom.planners import Task, TaskFetchingUnit, solve
from taskloom.planners.parser import JsonPlanParser, TextPlanParser
from taskloom.program.models import Defaults, PlannerName, PlanNode

T = TypeVar("T")
LOOKUPS = {"parallel-qa": (2, 4), "comparison": (2, 2), "movie": (8, 8)}


def _on_virtual_time(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )


@pytest.mark.parametrize("name", WORKLOAD_NAMES)
def test_tasks_are_deterministic_and_shaped_like_the_paper(name: str) -> None:
    first = build_llmcompiler_workload(name, 12, seed=3)
    assert first.tasks == build_llmcompiler_workload(name, 12, seed=3).tasks
    assert first.tasks != build_llmcompiler_workload(name, 12, seed=4).tasks
    low, high = LOOKUPS[name]
    for task in first.tasks:
        lookups = [t for t in task.plan if t.tool == "search"]
        assert low <= len(lookups) <= high
        assert all(t.dependencies == () for t in lookups)
        final = task.plan[-1]
        assert final.tool in ("calculator", "choose")
        assert set(final.dependencies) == {t.index for t in lookups}


@pytest.mark.parametrize("name", WORKLOAD_NAMES)
def test_reference_plans_parse_and_run_to_the_reference_answer(name: str) -> None:
    workload = build_llmcompiler_workload(name, 6, seed=0)
    tools = [workload.tools().get(n) for n in ("search", "calculator", "choose")]

    async def main() -> None:
        for task in workload.tasks:
            text_tasks = TextPlanParser(tools).feed(task.plan_text())
            json_parser = JsonPlanParser(tools)
            json_tasks = json_parser.feed(task.plan_json()) + json_parser.close()
            assert [t.args for t in text_tasks[:-1]] == [t.args for t in json_tasks]
            assert all(t.error is None for t in text_tasks) and text_tasks[-1].is_join
            unit = TaskFetchingUnit(tools)
            observations = await unit.run(_aiter(json_tasks))
            assert all(o.ok for o in observations), observations
            assert answers_match(observations[-1].value, task.answer)

    _on_virtual_time(main)


async def _aiter(items: list[Task]) -> AsyncIterator[Task]:
    for item in items:
        yield item


def test_tool_latency_is_a_function_of_the_call() -> None:
    workload = build_llmcompiler_workload("movie", 1, seed=0)
    latencies = workload.latencies
    one = latencies.latency("search", {"entity": "A"})
    assert one == latencies.latency("search", {"entity": "A"})
    assert one != latencies.latency("search", {"entity": "B"})
    assert one >= 0.1 and latencies.latency("choose", {"options": []}) == 0.005


def test_token_pieces_rebuild_the_text_at_the_simulator_token_count() -> None:
    text = 'Thought: go\n1. search(entity="Kirbuth Tower")\n2. join()\n'
    pieces = token_pieces(text)
    assert "".join(pieces) == text and len(pieces) == len(approx_tokens(text))


def test_the_scripted_model_streams_reference_text_at_the_engine_speed() -> None:
    workload = build_llmcompiler_workload("comparison", 1, seed=0)
    task = workload.tasks[0]
    request = GenerateRequest(
        call_id="r/answer/plan1/a1",
        messages=(Message("user", f"Question: {task.question}"),),
        sampling=SamplingParams(max_tokens=500),
    )

    async def main() -> tuple[str, list[float], int]:
        async with ScriptedOnSim(
            H100_LLAMA3_8B_ENGINE, H100_LLAMA3_8B, ReferenceFollower(workload.tasks)
        ) as engine:
            parts, times, generated = [], [], 0
            async for chunk in engine.generate(request):
                parts.append(chunk.text)
                times.append(anyio.current_time())
                generated = chunk.generated_tokens
            return "".join(parts), times, generated

    text, times, generated = _on_virtual_time(main)
    assert text == task.plan_text()
    assert generated == len(token_pieces(text)) == len(times)
    assert times == sorted(times) and times[0] < times[-1]  # one decode step per token


Row = tuple[bool, int, float]


def _solve_each(workload: LLMCompilerWorkload) -> tuple[list[Row], list[Row]]:
    """Every question through a `plan` node and through ReAct: (correct, LLM calls, latency)."""

    async def run(planner: PlannerName) -> list[Row]:
        node = PlanNode(
            question="q",
            tools=["search", "calculator", "choose"],
            planner=planner,
            max_tokens=512,
            max_steps=12,
        )
        rows = []
        async with ScriptedOnSim(
            H100_LLAMA3_8B_ENGINE, H100_LLAMA3_8B, ReferenceFollower(workload.tasks)
        ) as engine:
            for task in workload.tasks:
                start = anyio.current_time()
                env = NodeEnvironment(
                    run_id=task.task_id,
                    node_id="answer",
                    scheduler=FifoScheduler(engine),
                    tools=workload.tools(),
                    defaults=Defaults(),
                    kinds=node_kinds,
                )
                usage = CallLedger()
                outcome = await solve(node, task.question, env, usage)
                rows.append(
                    (
                        answers_match(outcome.answer, task.answer),
                        usage.usage.llm_calls,
                        anyio.current_time() - start,
                    )
                )
        return rows

    async def main() -> tuple[list[Row], list[Row]]:
        return await run("llmcompiler"), await run("react")

    return _on_virtual_time(main)


def test_plans_and_react_follow_the_reference_to_the_same_answers() -> None:
    workload = build_llmcompiler_workload("parallel-qa", 3, seed=1)
    plan, react = _solve_each(workload)
    assert all(ok for ok, _, _ in plan) and all(ok for ok, _, _ in react)
    assert all(calls == 2 for _, calls, _ in plan)
    lookups = [len(t.plan) for t in workload.tasks]
    assert [calls for _, calls, _ in react] == [n + 1 for n in lookups]
    # On virtual time the comparison is exact: parallel lookups beat sequential ones.
    assert all(p < r for (_, _, p), (_, _, r) in zip(plan, react, strict=True))


def test_a_choice_left_to_the_answer_is_made_from_the_observations() -> None:
    workload = build_llmcompiler_workload("movie", 3, seed=2).with_choice_in_answer()
    for task in workload.tasks:
        assert task.answer_choice is not None
        assert [t.tool for t in task.plan] == ["search"] * 8  # no `choose` call left
    plan, react = _solve_each(workload)
    assert all(ok for ok, _, _ in plan) and all(ok for ok, _, _ in react)
    assert all(calls == 2 for _, calls, _ in plan)
    assert all(calls == 9 for _, calls, _ in react)  # 8 lookups and the answer, as in the paper


def test_an_answer_choice_picks_from_what_was_observed() -> None:
    records = [{"name": "A", "rating": 5.0}, "not a record", {"name": "B", "rating": 7.5}]
    assert AnswerChoice("rating", "highest").pick(records) == "B"
    assert AnswerChoice("rating", "lowest").pick(records) == "A"
    assert AnswerChoice("year", "lowest").pick(records) == "unknown"
