"""The `plan` node: render the question, pick the planner, return the answer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskloom.orchestrator.node_runners import CallUsage, NodeEnvironment
from taskloom.planners.base import PlanOutcome
from taskloom.planners.llm_calls import PlanLLM, PlannerSettings
from taskloom.planners.llmcompiler import solve_llmcompiler
from taskloom.planners.react import solve_react
from taskloom.program.models import PlanNode
from taskloom.program.refs import render_template


async def run_plan(
    node: PlanNode, context: Mapping[str, Any], env: NodeEnvironment, usage: CallUsage
) -> Any:
    """One attempt of a `plan` node; its output is the final answer."""
    outcome = await solve(node, render_template(node.question, context), env, usage)
    return outcome.answer


async def solve(
    node: PlanNode, question: str, env: NodeEnvironment, usage: CallUsage
) -> PlanOutcome:
    """Answer `question` with the node's planner, and keep what happened on the way."""
    tools = [env.tools.get(name) for name in node.tools]
    llm = PlanLLM(env, usage, PlannerSettings.for_node(node, env.defaults))
    json_format = node.format == "json"
    if node.planner == "react":
        return await solve_react(
            question,
            tools,
            llm,
            json_steps=json_format,
            max_steps=node.max_steps,
            output_schema=node.output_schema,
            examples=node.examples,
        )
    return await solve_llmcompiler(
        question,
        tools,
        llm,
        json_plan=json_format,
        max_replans=node.max_replans,
        output_schema=node.output_schema,
        examples=node.examples,
        max_tasks=node.max_tasks,
    )
