"""The words the planner, the joiner and the ReAct baseline say to the model.

Kept apart from the logic so that a spec can replace the examples and a benchmark can
count exactly what each side was sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskloom.backends.base import Message
from taskloom.planners.base import History
from taskloom.planners.plan_format import format_round, format_tools
from taskloom.tools.registry import Tool

# ---------------------------------------------------------------- planner

_TEXT_PLAN_RULES = """\
Write the plan as numbered lines, one tool call per line:
N. tool_name(argument=value, ...)
Rules:
- Values are JSON: "text", 42, 2.5, true, ["a", "b"], {"key": "value"}.
- $N is the result of task N, keeping its type: a number stays a number. $N.field or
  $N["field"] picks a field of a result and $N[0] an item of a list. Inside a quoted
  string, "... $N ..." writes the result into the text.
- A task may only use results of tasks above it. Tasks that do not use each other's
  results run at the same time, so look up independent things in separate tasks.
- You may put one line `Thought: ...` before a task.
- After the last task write `N. join()` and stop."""

_TEXT_PLAN_EXAMPLE = """\
Example (the tools `lookup` and `calculator` here are only for illustration):
Question: What is the combined population of Oslo and Bergen, in thousands?
Thought: Both cities can be looked up at once.
1. lookup(name="Oslo")
2. lookup(name="Bergen")
3. calculator(expression="($1.population + $2.population) / 1000")
4. join()"""

_JSON_PLAN_RULES = """\
Reply with a JSON object {"tasks": [...]}. Each task is
{"id": N, "tool": "tool_name", "args": {"argument": value, ...}}, numbered 1, 2, 3, ...
Rules:
- "$N" is the result of task N, keeping its type; "$N.field" picks a field of it.
  Inside a longer string, "... $N ..." writes the result into the text.
- A task may only use results of tasks before it. Tasks that do not use each other's
  results run at the same time, so look up independent things in separate tasks."""

_JSON_PLAN_EXAMPLE = """\
Example (the tools `lookup` and `calculator` here are only for illustration):
Question: What is the combined population of Oslo and Bergen, in thousands?
{"tasks": [{"id": 1, "tool": "lookup", "args": {"name": "Oslo"}},
 {"id": 2, "tool": "lookup", "args": {"name": "Bergen"}},
 {"id": 3, "tool": "calculator",
  "args": {"expression": "($1.population + $2.population) / 1000"}}]}"""


def planner_messages(
    question: str,
    tools: Sequence[Tool],
    history: History,
    *,
    json_plan: bool,
    examples: str | None = None,
) -> tuple[Message, ...]:
    rules = _JSON_PLAN_RULES if json_plan else _TEXT_PLAN_RULES
    example = (
        examples
        if examples is not None
        else (_JSON_PLAN_EXAMPLE if json_plan else _TEXT_PLAN_EXAMPLE)
    )
    system = (
        "You answer questions by planning tool calls that a program runs for you, "
        f"in parallel where it can.\nTools:\n{format_tools(tools)}\n\n{rules}\n\n{example}"
    )
    return (Message("system", system), Message("user", _planner_request(question, history)))


def _planner_request(question: str, history: History) -> str:
    if not history.rounds:
        return f"Question: {question}"
    earlier = "\n\n".join(
        f"Plan {number}:\n{format_round(r)}" for number, r in enumerate(history.rounds, 1)
    )
    return (
        f"Question: {question}\n\nEarlier plans and what they observed:\n{earlier}\n\n"
        "Write a new plan that fixes what went wrong. Number its tasks from 1 again; "
        "earlier results are not available as $N, so copy any value you still need."
    )


# ---------------------------------------------------------------- joiner

_JOINER_TEXT_FORM = """\
Reply in exactly this form:
Thought: <one or two sentences of reasoning>
Action: Finish(<the answer>)
Write the answer itself inside Finish(...), without adding quotes around it."""

_JOINER_REPLAN_FORM = """\
If the results do not answer the question (a task failed, or something is missing),
reply instead with
Thought: <what went wrong>
Action: Replan(<what the next plan should do differently>)"""

_JOINER_NO_REPLAN = "There is no chance to plan again: answer with Finish(...) from what you have."

_JOINER_JSON_FORM = """\
Reply with JSON: {"thought": "...", "action": "finish", "answer": <the answer>}."""

_JOINER_JSON_REPLAN = """\
If the results do not answer the question (a task failed, or something is missing),
reply {"thought": "...", "action": "replan", "reason": "<what to do differently>"} instead."""


def joiner_messages(
    question: str, history: History, *, json_reply: bool, allow_replan: bool
) -> tuple[Message, ...]:
    if json_reply:
        form = _JOINER_JSON_FORM + ("\n" + _JOINER_JSON_REPLAN if allow_replan else "")
    else:
        form = (
            _JOINER_TEXT_FORM + "\n" + (_JOINER_REPLAN_FORM if allow_replan else _JOINER_NO_REPLAN)
        )
    system = (
        "A program ran a plan of tool calls to answer a question. Decide whether the "
        f"results answer it.\n{form}"
    )
    plans = "\n\n".join(
        f"Plan {number}:\n{format_round(r)}" for number, r in enumerate(history.rounds, 1)
    )
    user = f"Question: {question}\n\n{plans}"
    return (Message("system", system), Message("user", user))


# ---------------------------------------------------------------- ReAct

_REACT_TEXT_FORM = """\
Answer step by step. Each reply is exactly one step, in one of two forms:
Thought: <what to do next and why>
Action: tool_name(argument=value, ...)
or, once you know the answer:
Thought: <why this is the answer>
Final Answer: <the answer>
Argument values are JSON: "text", 42, 2.5, true, [...], {...}. After each Action you
get its result as an Observation; use the values you observed in later actions."""

_REACT_TEXT_EXAMPLE = """\
Example (the tools `lookup` and `calculator` here are only for illustration):
Question: What is the combined population of Oslo and Bergen, in thousands?
Thought: First I need the population of Oslo.
Action: lookup(name="Oslo")
Observation: {"population": 709000}
Thought: Now Bergen.
Action: lookup(name="Bergen")
Observation: {"population": 291000}
Thought: Add them and divide by 1000.
Action: calculator(expression="(709000 + 291000) / 1000")
Observation: 1000.0
Thought: I have the answer.
Final Answer: 1000"""

_REACT_JSON_FORM = """\
Answer step by step. Each reply is one JSON step:
{"thought": "...", "tool": "tool_name", "args": {"argument": value, ...}}
and, once you know the answer, {"thought": "...", "tool": "finish", "args": {"answer": ...}}.
After each step you get the tool's result as an Observation; use the values you observed
in later steps."""


def react_messages(
    question: str,
    tools: Sequence[Tool],
    scratchpad: str,
    *,
    json_steps: bool,
    examples: str | None = None,
) -> tuple[Message, ...]:
    form = _REACT_JSON_FORM if json_steps else _REACT_TEXT_FORM
    example = examples if examples is not None else ("" if json_steps else _REACT_TEXT_EXAMPLE)
    system = f"You answer questions with tools.\nTools:\n{format_tools(tools)}\n\n{form}"
    if example:
        system += f"\n\n{example}"
    user = f"Question: {question}" + (f"\n{scratchpad}" if scratchpad else "")
    return (Message("system", system), Message("user", user))
