"""LLMCompiler (Kim et al., ICML 2024): plan tool calls, run them as the plan streams,
join, and plan again when the joiner asks to.

The planner streams the model's plan through a parser and yields each task the moment
it is complete; the Task Fetching Unit starts it as soon as its inputs exist. Once the
plan has ended (at `join()`, where the planner stops reading and so aborts whatever the
model would still write) and every task has finished, the joiner either answers or
gives a reason to replan. A replan sees every earlier plan with its observations; after
`max_replans` the joiner must answer.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from taskloom.planners.base import History, PlanError, PlanOutcome, Round, Task
from taskloom.planners.joiner import (
    Decision,
    Finish,
    Joiner,
    JoinerReplyError,
    Replan,
    shape_answer,
)
from taskloom.planners.llm_calls import PlanLLM
from taskloom.planners.parser import JsonPlanParser, PlanParser, TextPlanParser
from taskloom.planners.plan_format import MAX_PLAN_TASKS, plan_json_schema
from taskloom.planners.prompts import planner_messages
from taskloom.planners.subtasks import reporting_unit
from taskloom.tools.registry import Tool


class LLMCompilerPlanner:
    """Streams one plan per call of `plan`, as `Task`s in the order the model wrote them."""

    def __init__(
        self,
        llm: PlanLLM,
        *,
        json_plan: bool,
        examples: str | None = None,
        max_tasks: int = MAX_PLAN_TASKS,
    ) -> None:
        self.llm = llm
        self.json_plan = json_plan
        self.examples = examples
        self.max_tasks = max_tasks

    async def plan(
        self, question: str, tools: Sequence[Tool], history: History
    ) -> AsyncGenerator[Task, None]:
        messages = planner_messages(
            question, tools, history, json_plan=self.json_plan, examples=self.examples
        )
        schema = plan_json_schema(tools, self.max_tasks) if self.json_plan else None
        request = self.llm.request(f"plan{len(history.rounds) + 1}", messages, schema)
        parser: PlanParser = (
            JsonPlanParser(tools, max_tasks=self.max_tasks)
            if self.json_plan
            else TextPlanParser(tools, max_tasks=self.max_tasks)
        )
        async with aclosing(self.llm.stream(request)) as pieces:
            async for piece in pieces:
                for task in parser.feed(piece):
                    yield task
                if parser.done:
                    break  # leaving the stream aborts the call: nothing after join() matters
        for task in parser.close():
            yield task


async def solve_llmcompiler(
    question: str,
    tools: Sequence[Tool],
    llm: PlanLLM,
    *,
    json_plan: bool,
    max_replans: int,
    output_schema: Mapping[str, Any] | None = None,
    examples: str | None = None,
    max_tasks: int = MAX_PLAN_TASKS,
) -> PlanOutcome:
    """Plan, run, join; replan at most `max_replans` times."""
    run = _CompilerRun(
        LLMCompilerPlanner(llm, json_plan=json_plan, examples=examples, max_tasks=max_tasks),
        Joiner(llm, json_reply=json_plan, output_schema=output_schema),
        llm,
    )
    try:
        return await run.solve(question, tools, max_replans, output_schema)
    except PlanError as exc:
        exc.history = exc.history or run.history
        raise


class _CompilerRun:
    """The rounds of one question; keeps the history so a failure can report it."""

    def __init__(self, planner: LLMCompilerPlanner, joiner: Joiner, llm: PlanLLM) -> None:
        self.planner = planner
        self.joiner = joiner
        self.llm = llm
        self.history = History()

    async def solve(
        self,
        question: str,
        tools: Sequence[Tool],
        max_replans: int,
        output_schema: Mapping[str, Any] | None,
    ) -> PlanOutcome:
        for number in range(1, max_replans + 2):
            decision = await self._round(
                question, tools, number, allow_replan=number <= max_replans
            )
            if isinstance(decision, Finish):
                return PlanOutcome(shape_answer(decision.answer, output_schema), self.history)
            if number > max_replans:
                raise PlanError(
                    f"the joiner still asks for a new plan after {max_replans} replans "
                    f"(max_replans): {decision.reason}"
                )
            last = dataclasses.replace(self.history.rounds[-1], replan_reason=decision.reason)
            self.history = History((*self.history.rounds[:-1], last))
        raise AssertionError("unreachable: the last round cannot replan")

    async def _round(
        self, question: str, tools: Sequence[Tool], number: int, *, allow_replan: bool
    ) -> Decision:
        label = f"plan{number}"
        fetcher = reporting_unit(tools, self.llm.env, label, self.llm.ledger)
        observations = await fetcher.run(self.planner.plan(question, tools, self.history))
        self.history = self.history.with_round(Round(tuple(fetcher.tasks), observations))
        return await _decide(self.joiner, question, self.history, allow_replan, f"join{number}")


async def _decide(
    joiner: Joiner, question: str, history: History, allow_replan: bool, purpose: str
) -> Decision:
    try:
        return await joiner.decide(question, history, allow_replan=allow_replan, purpose=purpose)
    except JoinerReplyError as exc:
        if not allow_replan:
            raise
        # A reply the runtime cannot read is one more thing the next plan can fix.
        return Replan(f"the check of the results could not be read ({exc})")
