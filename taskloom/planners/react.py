"""The ReAct baseline (Yao et al., 2023): Thought, Action, Observation, one tool call per
LLM call, until a final answer or the step limit.

It uses the same tools, backend, argument syntax and task runner as LLMCompiler, so a
comparison between the two measures the planning strategy and nothing else. Each call
of `plan` is one step: one LLM call that yields one task, either a tool action or a
`finish` task holding the answer.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, Mapping, Sequence
from contextlib import aclosing
from typing import Any

from taskloom.naming import did_you_mean
from taskloom.planners.base import (
    FINISH_TOOL,
    History,
    PlanError,
    PlanOutcome,
    Round,
    Task,
    iter_refs,
)
from taskloom.planners.joiner import shape_answer
from taskloom.planners.llm_calls import PlanLLM
from taskloom.planners.parser import ArgumentSyntaxError, parse_arguments
from taskloom.planners.plan_format import (
    args_schema,
    format_call,
    format_observation,
    with_definitions,
)
from taskloom.planners.prompts import react_messages
from taskloom.planners.subtasks import reporting_unit
from taskloom.tools.registry import Tool

_FINAL = re.compile(r"Final\s+Answer\s*:\s*", re.IGNORECASE)
_ACTION = re.compile(r"Action\s*:\s*(?P<tool>[A-Za-z_][\w.:-]*)\s*\((?P<rest>.*)", re.DOTALL)
_THOUGHT = re.compile(
    r"Thought\s*:\s*(?P<text>.*?)\s*(?=Action\s*:|Final\s+Answer\s*:|$)", re.IGNORECASE | re.DOTALL
)
# A model that goes on to imagine the observation has stopped acting.
_STOP = ("\nObservation:",)


class ReActPlanner:
    """One step per `plan` call: asks the model for the next action given the history."""

    def __init__(self, llm: PlanLLM, *, json_steps: bool, examples: str | None = None) -> None:
        self.llm = llm
        self.json_steps = json_steps
        self.examples = examples

    async def plan(
        self, question: str, tools: Sequence[Tool], history: History
    ) -> AsyncGenerator[Task, None]:
        step = len(history.rounds) + 1
        messages = react_messages(
            question,
            tools,
            scratchpad(history, json_steps=self.json_steps),
            json_steps=self.json_steps,
            examples=self.examples,
        )
        schema = react_step_schema(tools) if self.json_steps else None
        request = self.llm.request(f"step{step}", messages, schema, stop=_STOP)
        text = await self.llm.complete(request)
        parse = parse_json_step if self.json_steps else parse_text_step
        yield _checked(parse(text, step), tools)


def scratchpad(history: History, *, json_steps: bool = False) -> str:
    """Every step so far, each followed by its Observation: `Thought:`/`Action:` lines,
    or the JSON step itself when steps are JSON."""
    lines: list[str] = []
    for round_ in history.rounds:
        for task, observation in zip(round_.tasks, round_.observations, strict=False):
            lines += _step_lines(task, json_steps)
            lines.append(f"Observation: {format_observation(observation)}")
    return "\n".join(lines)


def _step_lines(task: Task, json_steps: bool) -> list[str]:
    if json_steps:
        return [task.source.strip()]
    action = task.source.strip() if task.error and task.source else format_call(task)
    return [f"Thought: {task.thought}", f"Action: {action}"]


# ---------------------------------------------------------------- reading a step


def parse_text_step(text: str, step: int) -> Task:
    text = text.split("\nObservation:", 1)[0]
    thought_match = _THOUGHT.search(text)
    thought = thought_match.group("text").strip() if thought_match else ""
    final, action = _FINAL.search(text), _ACTION.search(text)
    if final is not None and (action is None or final.start() < action.start()):
        answer = text[final.end() :].strip()
        return Task(step, FINISH_TOOL, {"answer": answer}, thought, text)
    if action is None:
        why = "the reply has neither `Action: tool(...)` nor `Final Answer: ...`"
        return Task(step, "", {}, thought, text.strip(), why)
    return _action_task(step, action.group("tool"), action.group("rest"), thought, text)


def _action_task(step: int, tool: str, rest: str, thought: str, text: str) -> Task:
    source = f"{tool}({rest.strip()}"
    closing = _closing_paren(rest)
    if closing < 0:
        return Task(step, tool, {}, thought, source, "the action is not closed with ')'")
    try:
        args = parse_arguments(rest[:closing], None) if rest[:closing].strip() else {}
    except ArgumentSyntaxError as exc:
        return Task(step, tool, {}, thought, source, f"cannot parse the action: {exc}")
    return Task(step, tool, args, thought, text)


def _closing_paren(text: str) -> int:
    depth, quote, escaped = 1, "", False
    for position, char in enumerate(text):
        if quote:
            escaped = char == "\\" and not escaped
            quote = "" if char == quote and not escaped else quote
        elif char in "\"'":
            quote, escaped = char, False
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
            if depth == 0:
                return position
    return -1


def parse_json_step(text: str, step: int) -> Task:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Task(step, "", {}, "", text, f"the step is not valid JSON ({exc.msg})")
    if not isinstance(data, dict) or not isinstance(data.get("tool"), str):
        return Task(step, "", {}, "", text, 'a step is {"thought", "tool", "args"}')
    raw_args = data.get("args")
    args: dict[str, Any] = raw_args if isinstance(raw_args, dict) else {}
    return Task(step, data["tool"], args, str(data.get("thought", "")), text)


def _checked(task: Task, tools: Sequence[Tool]) -> Task:
    names = [tool.name for tool in tools]
    if task.error is not None or task.is_finish:
        return task
    problem: str | None = None
    if task.tool not in names:
        hint = did_you_mean(task.tool, names) or f"the tools are: {', '.join(names)}"
        problem = f"unknown tool '{task.tool}'; {hint}"
    elif any(True for _ in iter_refs(task.args)):
        problem = "a ReAct action takes values; write the observed value instead of $N"
    if problem is None:
        return task
    return Task(task.index, task.tool, task.args, task.thought, task.source, problem)


def react_step_schema(tools: Sequence[Tool]) -> dict[str, Any]:
    """One step: a tool from the enum of tools with that tool's arguments, or `finish`."""
    steps = [_step_schema(t.name, args_schema(t, allow_references=False)) for t in tools]
    finish_args = {
        "type": "object",
        "properties": {"answer": {"type": "string", "maxLength": 400}},
        "required": ["answer"],
        "additionalProperties": False,
    }
    steps.append(_step_schema(FINISH_TOOL, finish_args))
    return with_definitions({"anyOf": steps}, tools)


def _step_schema(name: str, args: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "thought": {"type": "string", "maxLength": 200},
            "tool": {"type": "string", "enum": [name]},
            "args": dict(args),
        },
        "required": ["thought", "tool", "args"],
        "additionalProperties": False,
    }


# ---------------------------------------------------------------- the loop


async def solve_react(
    question: str,
    tools: Sequence[Tool],
    llm: PlanLLM,
    *,
    json_steps: bool,
    max_steps: int,
    output_schema: Mapping[str, Any] | None = None,
    examples: str | None = None,
) -> PlanOutcome:
    planner = ReActPlanner(llm, json_steps=json_steps, examples=examples)
    history = History()
    try:
        for step in range(1, max_steps + 1):
            task = await _next_task(planner, question, tools, history)
            if task.is_finish and task.error is None:
                return PlanOutcome(shape_answer(task.args.get("answer"), output_schema), history)
            fetcher = reporting_unit(tools, llm.env, f"step{step}", llm.ledger)
            observation = await fetcher.run_one(task)
            history = history.with_round(Round((task,), (observation,)))
        raise PlanError(f"ReAct took max_steps ({max_steps}) steps without a final answer")
    except PlanError as exc:
        exc.history = exc.history or history
        raise


async def _next_task(
    planner: ReActPlanner, question: str, tools: Sequence[Tool], history: History
) -> Task:
    async with aclosing(planner.plan(question, tools, history)) as steps:
        async for task in steps:
            return task
    raise PlanError("the ReAct planner gave no step")
