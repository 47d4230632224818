"""The `plan` kind: an LLM planner (LLMCompiler or ReAct) answers a question with tools.

It builds on the orchestrator's kind interface, and `taskloom.runtime` registers it;
the orchestrator itself knows nothing of planners.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from taskloom.orchestrator.kinds.base import (
    JsonSchema,
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    SpecPath,
    TemplateSite,
)
from taskloom.orchestrator.tool_catalog import unknown_tool_hint
from taskloom.planners.base import PlanOutcome
from taskloom.planners.llm_calls import PlanLLM, PlannerSettings
from taskloom.planners.llmcompiler import solve_llmcompiler
from taskloom.planners.react import solve_react
from taskloom.program.models import PlanNode
from taskloom.program.refs import render_template
from taskloom.program.render_deadline import render_off_loop

if TYPE_CHECKING:
    from taskloom.orchestrator.llm_call import CallLedger


class PlanKind(NodeKind[PlanNode]):
    name = "plan"
    model = PlanNode

    def template_sites(
        self, node: PlanNode, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        yield TemplateSite((*path, "question"), node.question, bound=bound)

    def output_schema(self, node: PlanNode, kinds: KindLookup) -> JsonSchema | None:
        return node.output_schema or {"type": "string"}

    def check(self, node_id: str, node: PlanNode, path: SpecPath, checks: NodeChecks) -> None:
        if node.output_schema is not None:
            checks.check_output_schema(node_id, node.output_schema, (*path, "output_schema"))
        tools = checks.tools
        if tools is None:
            return
        for index, name in enumerate(node.tools):
            if name not in tools:
                checks.report(
                    f"unknown tool '{name}' in the planner's tools",
                    (*path, "tools", index),
                    node=node_id,
                    hint=unknown_tool_hint(name, tools),
                )

    async def run(
        self, node: PlanNode, context: Mapping[str, Any], env: NodeEnvironment, ledger: CallLedger
    ) -> Any:
        """One attempt; the output is the final answer."""
        question = await render_off_loop(render_template, node.question, context)
        outcome = await solve(node, question, env, ledger)
        return outcome.answer


async def solve(
    node: PlanNode, question: str, env: NodeEnvironment, ledger: CallLedger
) -> PlanOutcome:
    """Answer `question` with the node's planner, and keep what happened on the way."""
    tools = [env.tools.get(name) for name in node.tools]
    llm = PlanLLM(env, ledger, PlannerSettings.for_node(node, env.defaults))
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
