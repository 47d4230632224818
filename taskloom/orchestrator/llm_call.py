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

import jsonschema

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.errors import TaskloomError
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
    """The LLM calls of one node attempt: their total spend and their ids, in order.

    The ids are the parents of later calls of the same program, so a program-aware
    scheduler sees one growing thread.
    """

    usage: TokenUsage = field(default_factory=TokenUsage)
    call_ids: list[str] = field(default_factory=list)

    def started(self, call_id: str) -> None:
        self.call_ids.append(call_id)
        self.usage = self.usage + TokenUsage(llm_calls=1)

    def spent(self, usage: TokenUsage) -> None:
        self.usage = self.usage + usage


async def stream_call(
    submit: Submit, request: GenerateRequest, ledger: CallLedger
) -> AsyncGenerator[Chunk, None]:
    """The chunks of `request`; its tokens go to `ledger` however the call ends."""
    ledger.started(request.call_id)
    last = Chunk(text="")
    try:
        async with aclosing(submit(request)) as stream:
            async for chunk in stream:
                last = chunk
                yield chunk
    finally:
        # Counted even when the call was aborted part-way: those tokens were spent.
        ledger.spent(TokenUsage.of_chunk(last))


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
