"""A workload task: a question, the plan that answers it, and the answer.

The reference plan is written in the plan language itself (`Task`s with `$N`
references), so it can be rendered as a text plan, a JSON plan, or replayed as ReAct
steps, and scored against the reference answer.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from taskloom.planners.base import JOIN_TOOL, Interpolation, Ref, Task
from taskloom.planners.plan_format import format_task


@dataclass(frozen=True)
class WorkloadTask:
    task_id: str
    workload: str
    question: str
    plan: tuple[Task, ...]
    answer: Any
    plan_thought: str = ""

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
