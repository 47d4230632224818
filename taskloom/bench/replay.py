"""Record what a real engine answered, so the simulator can replay the same work.

A real model stops when it is done, often before `max_tokens`; the simulator answers
with exactly as many tokens as it is told. To compare the two on the same workload,
`RecordingBackend` wraps the real engine and notes each call's generated and prompt
tokens, keyed by (program, thread); `RecordedLengths.output_tokens` then gives the
simulator those lengths, falling back to `max_tokens` for calls it never saw.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field

from taskloom.backends.base import Backend, Chunk, GenerateRequest

CallKey = tuple[str, str]


@dataclass(frozen=True)
class RecordedCall:
    prompt_tokens: int
    generated_tokens: int


@dataclass
class RecordedLengths:
    """What each call of a run produced, keyed by (program_id, thread_id)."""

    calls: dict[CallKey, RecordedCall] = field(default_factory=dict)

    def output_tokens(self, request: GenerateRequest) -> int:
        """The recorded answer length of `request` (its `max_tokens` if not recorded)."""
        recorded = self.calls.get(_key(request))
        if recorded is None or recorded.generated_tokens < 1:
            return request.sampling.max_tokens
        return recorded.generated_tokens

    def note(self, request: GenerateRequest, chunk: Chunk) -> None:
        self.calls[_key(request)] = RecordedCall(chunk.prompt_tokens, chunk.generated_tokens)

    @property
    def generated_tokens(self) -> int:
        return sum(call.generated_tokens for call in self.calls.values())

    @property
    def prompt_tokens(self) -> int:
        return sum(call.prompt_tokens for call in self.calls.values())


class RecordingBackend:
    """A `Backend` that passes everything to `inner` and records each call's lengths."""

    def __init__(self, inner: Backend, lengths: RecordedLengths | None = None) -> None:
        self.inner = inner
        self.name = inner.name
        self.lengths = lengths if lengths is not None else RecordedLengths()

    def capacity(self) -> int:
        return self.inner.capacity()

    async def close(self) -> None:
        await self.inner.close()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        async with aclosing(self.inner.generate(request)) as stream:
            async for chunk in stream:
                if chunk.finished:
                    self.lengths.note(request, chunk)
                yield chunk


def _key(request: GenerateRequest) -> CallKey:
    return request.program_id, request.thread_id
