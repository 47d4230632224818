"""The one way an LLM call is made: stream it through the scheduler, count what it
spends, and read a structured answer.

Nodes, planners, joiners and votes all call through here, so token accounting, call
ids (the parents a program-aware scheduler sees) and output parsing mean the same thing
everywhere.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any

import anyio
import jsonschema

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.errors import TaskloomError
from taskloom.orchestrator.budget_meter import BudgetMeter, refuse
from taskloom.orchestrator.result import Preemption
from taskloom.orchestrator.scheduler.call_reports import CallReport, CallWatch
from taskloom.program import schemas

Submit = Callable[[GenerateRequest], AsyncGenerator[Chunk, None]]
"""`Scheduler.submit`, or a backend's `generate`: closing the stream aborts the call."""


class NodeOutputError(TaskloomError):
    """An LLM answer that does not fit the declared output schema."""


@dataclass(frozen=True)
class TokenUsage:
    """What LLM calls spent. Values add up: `a + b` is the spend of both."""

    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_prompt_tokens: int = 0
    llm_calls: int = 0

    def __add__(self, other: TokenUsage) -> TokenUsage:
        return TokenUsage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            generated_tokens=self.generated_tokens + other.generated_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens + other.cached_prompt_tokens,
            llm_calls=self.llm_calls + other.llm_calls,
        )

    @classmethod
    def of_chunk(cls, last: Chunk) -> TokenUsage:
        """The spend of one call, from the last chunk it streamed (counts are running)."""
        return cls(last.prompt_tokens, last.generated_tokens, last.cached_prompt_tokens, 0)


@dataclass
class CallLedger:
    """The calls of one node: their total spend and the LLM calls' ids, in order.

    The ids are the parents of later calls of the same program, so a program-aware
    scheduler sees one growing thread. `meter`, when the run has a budget, is told of
    every spend as it happens. `usage_by_model` keeps the tokens by the model each call
    named (None: the engine's own), for pricing.

    `watch`, when the scheduler reports its calls, is asked for each LLM call's report;
    the call's preemptions go to `preempted`, timed on `clock` (the executor's: seconds
    since the run started).
    """

    usage: TokenUsage = field(default_factory=TokenUsage)
    call_ids: list[str] = field(default_factory=list)
    meter: BudgetMeter | None = None
    tool_calls: int = 0
    tool_s: float = 0.0
    engine_s: float = 0.0
    queue_s: float = 0.0
    usage_by_model: dict[str | None, TokenUsage] = field(default_factory=dict)
    watch: CallWatch | None = None
    clock: Callable[[], float] = anyio.current_time
    preempted: list[Preemption] = field(default_factory=list)

    def started(self, call_id: str) -> None:
        self.call_ids.append(call_id)
        self.usage = self.usage + TokenUsage(llm_calls=1)

    def spent(self, usage: TokenUsage, model: str | None = None) -> None:
        self.usage = self.usage + usage
        self.usage_by_model[model] = self.usage_by_model.get(model, TokenUsage()) + usage

    def heard(self, report: CallReport) -> None:
        """The scheduler's report of one of its calls, heard the instant the call ended."""
        if not report.preempted_at_s:
            return
        shift = self.clock() - report.ended_at_s
        resumed: list[float | None] = [*report.resumed_at_s]
        resumed += [None] * (len(report.preempted_at_s) - len(resumed))
        self.preempted.extend(
            Preemption(at_s + shift, None if back_s is None else back_s + shift)
            for at_s, back_s in zip(report.preempted_at_s, resumed, strict=True)
        )
        self.preempted.sort(key=lambda preemption: preemption.at_s)

    def timed(self, elapsed_s: float, queued_s: float) -> None:
        """An LLM call's time: `queued_s` of its `elapsed_s` waiting for admission."""
        self.queue_s += queued_s
        self.engine_s += max(0.0, elapsed_s - queued_s)


async def stream_call(
    submit: Submit, request: GenerateRequest, ledger: CallLedger
) -> AsyncGenerator[Chunk, None]:
    """The chunks of `request`; its tokens and time go to `ledger` however the call
    ends. A call the run's budget has no room for is never sent (see `budget_meter`)."""
    meter = ledger.meter
    if meter is not None and not meter.admit_llm_call():
        await refuse(meter)
    ledger.started(request.call_id)
    started_s = anyio.current_time()
    last: Chunk | None = None
    watch = ledger.watch
    if watch is not None:
        watch.watch(request.call_id, ledger.heard)
    try:
        async with aclosing(submit(request)) as stream:
            async for chunk in stream:
                if meter is not None:  # counted per chunk: a long answer stops part-way
                    before = last or Chunk(text="")
                    meter.tokens_spent(chunk.prompt_tokens - before.prompt_tokens,
                                       chunk.generated_tokens - before.generated_tokens)
                last = chunk
                yield chunk
    finally:
        if watch is not None:  # a call that never reached the scheduler is never reported
            watch.unwatch(request.call_id, ledger.heard)
        # Counted even when the call was aborted part-way: those tokens were spent.
        # A call that ended before its first chunk never showed it reached the engine:
        # all its time counts as waiting.
        elapsed_s = anyio.current_time() - started_s
        ledger.spent(TokenUsage.of_chunk(last or Chunk(text="")), request.model)
        ledger.timed(elapsed_s, elapsed_s if last is None else min(last.queued_s, elapsed_s))


async def complete_text(submit: Submit, request: GenerateRequest, ledger: CallLedger) -> str:
    """The whole answer of `request` as one string."""
    parts: list[str] = []
    async with aclosing(stream_call(submit, request, ledger)) as stream:
        async for chunk in stream:
            parts.append(chunk.text)
    return "".join(parts)


def parse_structured(text: str, schema: Mapping[str, Any] | None) -> Any:
    """`text` read as JSON and checked against `schema`; None: `text` as it is."""
    if schema is None:
        return text
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NodeOutputError(
            f"the model's answer is not valid JSON ({exc.msg} at char {exc.pos}): "
            f"{preview(text)}; if it was cut off, raise max_tokens"
        ) from exc
    return check_structured(value, schema)


def check_structured(value: Any, schema: Mapping[str, Any]) -> Any:
    """`value` itself, once it fits `schema`."""
    try:
        schemas.validate(value, dict(schema))
    except jsonschema.ValidationError as exc:
        raise NodeOutputError(
            f"the model's JSON does not match output_schema: {exc.message}"
        ) from None
    return value


def preview(value: Any, limit: int = 120) -> str:
    """`value` as a short one-line string for an error message."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
