"""The `tool` kind: one call of a registered tool with rendered arguments."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from taskloom.orchestrator.kinds.base import (
    KindLookup,
    NodeChecks,
    NodeEnvironment,
    NodeKind,
    SpecPath,
    TemplateSite,
    value_sites,
)
from taskloom.orchestrator.tool_call import call_tool
from taskloom.orchestrator.tool_catalog import tool_signature_hint, unknown_tool_hint
from taskloom.program.models import ToolNode
from taskloom.program.refs import is_templated, render_value
from taskloom.program.render_deadline import render_off_loop

if TYPE_CHECKING:
    from taskloom.orchestrator.llm_call import CallLedger


class ToolKind(NodeKind[ToolNode]):
    name = "tool"
    model = ToolNode

    def template_sites(
        self, node: ToolNode, path: SpecPath, bound: frozenset[str], kinds: KindLookup
    ) -> Iterator[TemplateSite]:
        return value_sites(node.args, (*path, "args"), bound)

    def check(self, node_id: str, node: ToolNode, path: SpecPath, checks: NodeChecks) -> None:
        tools = checks.tools
        if tools is None:
            return
        if node.tool not in tools:
            checks.report(
                f"unknown tool '{node.tool}'",
                (*path, "tool"),
                node=node_id,
                hint=unknown_tool_hint(node.tool, tools),
            )
            return
        tool = tools.get(node.tool)
        literal = {k: v for k, v in node.args.items() if not is_templated(v)}
        templated = [k for k, v in node.args.items() if is_templated(v)]
        for problem in tool.check_static_args(literal, templated):
            arg = next((a for a in node.args if f"'{a}'" in problem), None)
            where: SpecPath = (*path, "args") if arg is None else (*path, "args", arg)
            checks.report(
                f"tool '{node.tool}': {problem}",
                where,
                node=node_id,
                hint=tool_signature_hint(tool),
            )

    async def run(
        self, node: ToolNode, context: Mapping[str, Any], env: NodeEnvironment, ledger: CallLedger
    ) -> Any:
        tool = env.tools.get(node.tool)
        args = await render_off_loop(render_value, node.args, context)
        if env.tracer.enabled:
            with env.tracer.tool_call(tool.name, env.node_id):
                return await call_tool(tool, args, ledger)
        return await call_tool(tool, args, ledger)
