"""Streaming one call through the scheduler while counting what it spends."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from typing import Protocol

from taskloom.backends.base import Chunk, GenerateRequest

Submit = Callable[[GenerateRequest], AsyncGenerator[Chunk, None]]
"""`Scheduler.submit`, or a backend's `generate`: closing the stream aborts the call."""


class UsageCounter(Protocol):
    """Where token counts go; the node runners' `CallUsage` is one."""

    prompt_tokens: int
    generated_tokens: int
    cached_prompt_tokens: int
    llm_calls: int
    call_ids: list[str]


class NullUsage:
    """A `UsageCounter` that nobody reads."""

    def __init__(self) -> None:
        self.prompt_tokens = self.generated_tokens = self.cached_prompt_tokens = 0
        self.llm_calls = 0
        self.call_ids: list[str] = []


async def counted(
    submit: Submit, request: GenerateRequest, usage: UsageCounter
) -> AsyncGenerator[Chunk, None]:
    """The chunks of `request`; its tokens are added to `usage` however it ends."""
    usage.llm_calls += 1
    usage.call_ids.append(request.call_id)
    last = Chunk(text="")
    try:
        async with aclosing(submit(request)) as stream:
            async for chunk in stream:
                last = chunk
                yield chunk
    finally:
        # Counted even when the call was aborted part-way: those tokens were spent.
        usage.prompt_tokens += last.prompt_tokens
        usage.generated_tokens += last.generated_tokens
        usage.cached_prompt_tokens += last.cached_prompt_tokens


async def complete_text(submit: Submit, request: GenerateRequest, usage: UsageCounter) -> str:
    parts: list[str] = []
    async with aclosing(counted(submit, request, usage)) as stream:
        async for chunk in stream:
            parts.append(chunk.text)
    return "".join(parts)
