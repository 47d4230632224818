"""The workload's tools: lookups in the knowledge base, arithmetic and a choice.

Each tool sleeps its drawn latency with anyio (so under the simulator it takes virtual
time) and then answers from the knowledge base. None uses a thread: a worker thread
would run in real time while the simulator's clock jumps ahead.
"""

from __future__ import annotations

from typing import Any, Literal

import anyio

from taskloom.bench.workloads.llmcompiler.knowledge import KnowledgeBase
from taskloom.bench.workloads.llmcompiler.latency import ToolLatencies
from taskloom.errors import ToolError
from taskloom.tools.builtin.calculator import calculator as evaluate
from taskloom.tools.registry import Tool, ToolRegistry, tool

Preference = Literal["highest", "lowest"]


def choose_option(options: list[str], scores: list[float], prefer: Preference) -> str:
    """The option with the highest (or lowest) score; the first one on a tie."""
    if not options or len(options) != len(scores):
        raise ToolError(
            f"choose needs one score per option ({len(options)} options, {len(scores)} scores)"
        )
    sign = 1 if prefer == "highest" else -1
    best = max(range(len(options)), key=lambda i: (sign * scores[i], -i))
    return options[best]


def make_tools(kb: KnowledgeBase, latencies: ToolLatencies) -> ToolRegistry:
    """A registry with `search`, `calculator` and `choose` over `kb`."""
    return ToolRegistry([_search(kb, latencies), _calculator(latencies), _choose(latencies)])


def _search(kb: KnowledgeBase, latencies: ToolLatencies) -> Tool:
    async def search(entity: str) -> dict[str, Any]:
        """Look up a city, tower or movie by its exact name; returns all its facts.

        Args:
            entity: the name, e.g. "Brailor" or "Tousk Tower".
        """
        await anyio.sleep(latencies.latency("search", {"entity": entity}))
        found = kb.find(entity)
        if found is None:
            close = kb.close_names(entity)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise ToolError(f"no entry named '{entity}'{hint}")
        return found.record()

    return tool(search)


def _calculator(latencies: ToolLatencies) -> Tool:
    async def calculator(expression: str) -> float | int:
        """Evaluate an arithmetic expression such as "(2 + 3) * 4 / 7".

        Args:
            expression: numbers, + - * / ** and parentheses.
        """
        await anyio.sleep(latencies.latency("calculator", {"expression": expression}))
        return evaluate(expression)

    return tool(calculator)


def _choose(latencies: ToolLatencies) -> Tool:
    async def choose(options: list[str], scores: list[float], prefer: Preference) -> str:
        """Pick the option whose score is the highest (or the lowest).

        Args:
            options: the names to choose from.
            scores: one number per option, in the same order.
            prefer: "highest" or "lowest".
        """
        args = {"options": options, "scores": scores, "prefer": prefer}
        await anyio.sleep(latencies.latency("choose", args))
        return choose_option(options, scores, prefer)

    return tool(choose)
