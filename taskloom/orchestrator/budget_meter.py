"""What one run spends against its budget, counted as it is spent.

Every LLM call, every token streamed and every tool call of a run is reported here the
moment it happens (by `llm_call.stream_call` and `tool_call.call_tool`), not when its
node ends, so a planner that replans or a vote that keeps sampling is stopped part-way.
The first limit crossed is kept, and `on_exceeded` is called once: the runtime cancels
the run there, which aborts every engine request still in flight.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import anyio

from taskloom.errors import BudgetExceeded
from taskloom.orchestrator.result import BudgetOverrun, NodeResult
from taskloom.program.budget import Budget


def _nothing() -> None:
    """The default `on_exceeded`: the refusals alone stop the calls."""


class BudgetMeter:
    """The running totals of one run, checked against `budget` at every change."""

    def __init__(self, budget: Budget, on_exceeded: Callable[[], None] = _nothing) -> None:
        self.budget = budget
        self.on_exceeded = on_exceeded
        self._limits = budget.limits()
        self.prompt_tokens = 0
        self.generated_tokens = 0
        self.llm_calls = 0
        self.tool_calls = 0
        self.exceeded: BudgetOverrun | None = None

    def add_finished(self, nodes: Iterable[NodeResult]) -> None:
        """Count what nodes finished before (a resumed run's) without checking: the run
        is stopped by its next spend if that already crosses a limit."""
        for node in nodes:
            self.prompt_tokens += node.prompt_tokens
            self.generated_tokens += node.generated_tokens
            self.llm_calls += node.llm_calls
            self.tool_calls += node.tool_calls

    def admit_llm_call(self) -> bool:
        """Count an LLM call about to be sent; False: refused, the budget is spent."""
        if self.exceeded is not None or self._crosses("llm_calls", self.llm_calls + 1):
            return False
        self.llm_calls += 1
        return True

    def admit_tool_call(self) -> bool:
        """Count a tool call about to start; False: refused, the budget is spent."""
        if self.exceeded is not None or self._crosses("tool_calls", self.tool_calls + 1):
            return False
        self.tool_calls += 1
        return True

    def tokens_spent(self, prompt: int, generated: int) -> None:
        """Tokens a call has just reported (they are spent, whatever happens next)."""
        self.prompt_tokens += prompt
        self.generated_tokens += generated
        if self.exceeded is None:
            (self._crosses("prompt_tokens", self.prompt_tokens)
             or self._crosses("generated_tokens", self.generated_tokens)
             or self._crosses("tokens", self.prompt_tokens + self.generated_tokens))

    def wall_time_up(self, used_s: float) -> None:
        """The run has run for its `wall_s` (a timer says so: time is not spent in steps)."""
        limit = self._limits.get("wall_s")
        if self.exceeded is None and limit is not None:
            self._trip(BudgetOverrun("wall_s", limit, used_s))

    def _crosses(self, name: str, used: float) -> bool:
        limit = self._limits.get(name)
        if limit is None or used <= limit:
            return False
        self._trip(BudgetOverrun(name, limit, used))
        return True

    def _trip(self, overrun: BudgetOverrun) -> None:
        self.exceeded = overrun
        self.on_exceeded()


async def refuse(meter: BudgetMeter) -> None:
    """End a call the meter refused: the run is being cancelled, so this checkpoint
    raises the cancellation; if nothing cancels it, the call fails saying why."""
    await anyio.lowlevel.checkpoint()
    overrun = meter.exceeded
    raise BudgetExceeded(overrun.describe() if overrun else "budget exceeded")
