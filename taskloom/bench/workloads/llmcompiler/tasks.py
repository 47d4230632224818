"""A workload task: a question, the plan that answers it, and the answer.

The reference plan is written in the plan language itself (`Task`s with `$N`
references), so it can be rendered as a text plan, a JSON plan, or replayed as ReAct
steps, and scored against the reference answer.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from taskloom.bench.workloads.llmcompiler.tools import Preference, choose_option
from taskloom.planners.base import JOIN_TOOL, Interpolation, Ref, Task
from taskloom.planners.plan_format import format_task


@dataclass(frozen=True)
class AnswerChoice:
    """A choice the model makes in its answer rather than through a tool call: the looked-up
    entity whose `field` is the highest (or lowest), the first one on a tie."""

    field: str
    prefer: Preference

    def pick(self, records: Sequence[Any]) -> str:
        found = [r for r in records if isinstance(r, dict) and self.field in r]
        if not found:
            return "unknown"
        names = [str(record["name"]) for record in found]
        return choose_option(names, [record[self.field] for record in found], self.prefer)


@dataclass(frozen=True)
class WorkloadTask:
    task_id: str
    workload: str
    question: str
    plan: tuple[Task, ...]
    answer: Any
    plan_thought: str = ""
    # Set when the answer is a choice the model makes from the observations (the joiner,
    # or ReAct's final step) instead of the plan's last tool call.
    answer_choice: AnswerChoice | None = None

    def with_choice_in_answer(self) -> WorkloadTask:
        """The same question with its closing `choose` call left to the model's answer, as
        the paper's Movie Recommendation runs had it (no tool makes the choice there)."""
        last = self.plan[-1] if self.plan else None
        if last is None or last.tool != "choose" or self.answer_choice is not None:
            return self
        scores = last.args["scores"]
        if not scores or not isinstance(scores[0], Ref) or not scores[0].path:
            return self
        choice = AnswerChoice(str(scores[0].path[0]), last.args["prefer"])
        thought = self.plan_thought.replace(", then choose.", "; the answer picks one.")
        return replace(self, plan=self.plan[:-1], plan_thought=thought, answer_choice=choice)

    def plan_text(self) -> str:
        """The reference plan as the text planner would write it, `join()` last."""
        lines = [f"Thought: {self.plan_thought}"] if self.plan_thought else []
        lines += [format_task(task) for task in self.plan]
        lines.append(f"{len(self.plan) + 1}. {JOIN_TOOL}()")
        return "\n".join(lines) + "\n"

    def plan_json(self) -> str:
        """The reference plan as a JSON plan."""
        tasks = [
            {"id": t.index, "tool": t.tool, "args": _json_value(dict(t.args))} for t in self.plan
        ]
        return json.dumps({"tasks": tasks})


def _json_value(value: Any) -> Any:
    if isinstance(value, Ref | Interpolation):
        return str(value)
    if isinstance(value, dict):
        return {key: _json_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(item) for item in value]
    return value


def answers_match(got: Any, expected: Any) -> bool:
    """Numbers match within a relative 1e-6 (and rounding in text); text case-insensitively."""
    expected_number, got_number = _number(expected), _number(got)
    if expected_number is not None:
        return got_number is not None and math.isclose(
            got_number, expected_number, rel_tol=1e-6, abs_tol=1e-9
        )
    return str(got).strip().strip('"').lower() == str(expected).strip().lower()


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(str(value).strip().replace(",", ""))
    except ValueError:
        return None
