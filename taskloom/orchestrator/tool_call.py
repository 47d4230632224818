"""The one way a node calls a tool: counted in the node's ledger, with the time it
took, and refused once the run's budget is spent. `tool` nodes, `map`s of tools and the
tasks of a `plan` all call through here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import anyio

from taskloom.orchestrator.budget_meter import refuse
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.tools.registry import Tool


async def call_tool(tool: Tool, args: Mapping[str, Any], ledger: CallLedger) -> Any:
    """`tool` called with `args`; its result, or what it raised."""
    meter = ledger.meter
    if meter is not None and not meter.admit_tool_call():
        await refuse(meter)
    ledger.tool_calls += 1
    started_s = anyio.current_time()
    try:
        return await tool.call(args)
    finally:
        ledger.tool_s += anyio.current_time() - started_s
