"""In-context examples for the planner prompts, one per workload, as the paper's
planners had: a worked task of the same shape over a different knowledge base (so the
example never gives away a fact the questions ask about), written in the format the
planner must use.
"""

from __future__ import annotations

import json
import random
from typing import Any

from taskloom.bench.workloads.llmcompiler.generators import GENERATORS
from taskloom.bench.workloads.llmcompiler.knowledge import KnowledgeBase, build_knowledge_base
from taskloom.bench.workloads.llmcompiler.tasks import WorkloadTask
from taskloom.bench.workloads.llmcompiler.tools import choose_option
from taskloom.planners.base import Task
from taskloom.planners.plan_format import format_call
from taskloom.planners.values import as_text, resolve_args
from taskloom.tools.builtin.calculator import calculator as evaluate

_EXAMPLE_SEED_OFFSET = 1_000


def example_prompt(
    generator_name: str, planner: str, fmt: str, seed: int = 0, *, choice_in_answer: bool = False
) -> str:
    """A worked example for `planner` ("llmcompiler" or "react") in `fmt` ("text"/"json");
    with `choice_in_answer`, the example leaves its closing choice to the answer."""
    kb = build_knowledge_base(seed + _EXAMPLE_SEED_OFFSET)
    task = GENERATORS[generator_name](kb, random.Random(f"example-{generator_name}"), 0)
    if choice_in_answer:
        task = task.with_choice_in_answer()
    if planner == "react":
        return f"Example:\nQuestion: {task.question}\n{_react_trace(task, kb, fmt == 'json')}"
    plan = task.plan_json() if fmt == "json" else task.plan_text().rstrip("\n")
    return f"Example:\nQuestion: {task.question}\n{plan}"


def reference_results(task: WorkloadTask, kb: KnowledgeBase) -> dict[int, Any]:
    """What each step of the reference plan returns, computed without the tools."""
    results: dict[int, Any] = {}
    for step in task.plan:
        args = resolve_args(step.args, results)
        results[step.index] = _result(step.tool, args, kb)
    return results


def _result(tool: str, args: dict[str, Any], kb: KnowledgeBase) -> Any:
    if tool == "search":
        found = kb.find(args["entity"])
        assert found is not None
        return found.record()
    if tool == "calculator":
        return evaluate(args["expression"])
    return choose_option(args["options"], args["scores"], args["prefer"])


def _react_trace(task: WorkloadTask, kb: KnowledgeBase, json_steps: bool) -> str:
    results = reference_results(task, kb)
    lines: list[str] = []
    for step in task.plan:
        args = resolve_args(step.args, results)
        thought = "I need this to answer the question."
        if json_steps:
            lines.append(json.dumps({"thought": thought, "tool": step.tool, "args": args}))
        else:
            lines += [
                f"Thought: {thought}",
                f"Action: {format_call(Task(step.index, step.tool, args))}",
            ]
        lines.append(f"Observation: {as_text(results[step.index])}")
    if task.answer_choice is not None:
        answer = task.answer_choice.pick(list(results.values()))
    else:
        answer = as_text(results[task.plan[-1].index])
    if json_steps:
        final = {"thought": "I have the answer.", "tool": "finish", "args": {"answer": answer}}
        lines.append(json.dumps(final))
    else:
        lines += ["Thought: I have the answer.", f"Final Answer: {answer}"]
    return "\n".join(lines)
