"""The tools that workload programs call: stand-ins with recorded or drawn latencies.

They only sleep with anyio, so under the simulator they take virtual time. Their
latencies and result sizes are drawn when the workload is built and passed as
arguments, so a run is the same however its tasks interleave.
"""

from __future__ import annotations

import re

import anyio

from taskloom.tools.registry import Tool, ToolRegistry, tool

RESULT_WORD = "ok"
"""The text of one token of a simulated tool result."""


async def simulated_call(function: str, latency_s: float, result_tokens: int) -> str:
    """Stand in for a function call: wait `latency_s`, answer `result_tokens` tokens.

    Args:
        function: the name of the function that was called, quoted in the result.
        latency_s: how long the call takes, in seconds.
        result_tokens: how many tokens the result holds.
    """
    await anyio.sleep(max(0.0, latency_s))
    return f"{function} returned: " + " ".join([RESULT_WORD] * max(0, result_tokens))


async def lats_select(candidates: list[str], scores: list[str]) -> str:
    """Pick the candidate step whose score text holds the highest number (LATS selection).

    Args:
        candidates: the expanded child steps.
        scores: one evaluation text per candidate.
    """
    if not candidates:
        return ""
    values = [_last_number(text) for text in scores] + [None] * len(candidates)
    best = max(range(len(candidates)), key=lambda i: (values[i] is not None, values[i] or 0.0, -i))
    return candidates[best]


# A score, optionally out of a scale ("7", "7.5", "7/10"): the score is the numerator.
_SCORE = re.compile(r"(\d+(?:\.\d+)?)(?:\s*/\s*\d+)?")


def _last_number(text: str) -> float | None:
    scores = _SCORE.findall(str(text))
    return float(scores[-1]) if scores else None


def workload_tools() -> ToolRegistry:
    """A registry holding every tool a workload program may call."""
    return ToolRegistry([simulated_call_tool(), lats_select_tool()])


def simulated_call_tool() -> Tool:
    return tool(simulated_call)


def lats_select_tool() -> Tool:
    return tool(lats_select)
