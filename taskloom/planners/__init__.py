"""Planners: an LLM writes tool calls and the runtime runs them.

`llmcompiler` streams a plan of parallel tool calls with `$N` dependencies, joins the
results and replans; `react` is the one-call-per-step baseline. Both back the `plan`
node kind (`PlanKind`).
"""

from taskloom.planners.base import (
    FINISH_TOOL,
    JOIN_TOOL,
    History,
    Interpolation,
    Observation,
    PlanError,
    Planner,
    PlanOutcome,
    Ref,
    Round,
    Task,
)
from taskloom.planners.fetching import TaskFetchingUnit
from taskloom.planners.joiner import Finish, Joiner, Replan, format_decision, parse_decision
from taskloom.planners.kind import PlanKind, solve
from taskloom.planners.llm_calls import PlanLLM, PlannerSettings
from taskloom.planners.llmcompiler import LLMCompilerPlanner, solve_llmcompiler
from taskloom.planners.parser import JsonPlanParser, TextPlanParser
from taskloom.planners.plan_format import plan_json_schema
from taskloom.planners.react import ReActPlanner, solve_react

__all__ = [
    "FINISH_TOOL",
    "JOIN_TOOL",
    "Finish",
    "History",
    "Interpolation",
    "Joiner",
    "JsonPlanParser",
    "LLMCompilerPlanner",
    "Observation",
    "PlanError",
    "PlanKind",
    "PlanLLM",
    "PlanOutcome",
    "Planner",
    "PlannerSettings",
    "ReActPlanner",
    "Ref",
    "Replan",
    "Round",
    "Task",
    "TaskFetchingUnit",
    "TextPlanParser",
    "format_decision",
    "parse_decision",
    "plan_json_schema",
    "solve",
    "solve_llmcompiler",
    "solve_react",
]
