"""What went through one engine, in total and per program: the load a run put on each of
several engines."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass

from taskloom.backends.base import Backend, Chunk, GenerateRequest, kv_capacity_of


@dataclass
class UsageTally:
    """Streams sent to one engine and what they came to. Token counts are the engine's
    own, per stream: a call resumed elsewhere counts its prompt again there."""

    calls: int = 0  # streams that finished the call
    attempts: int = 0
    failed_attempts: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    generated_tokens: int = 0

    def count(self, last: Chunk | None, *, failed: bool) -> None:
        self.attempts += 1
        self.failed_attempts += failed
        if last is None:
            return
        self.calls += last.finished
        self.prompt_tokens += last.prompt_tokens
        self.cached_prompt_tokens += last.cached_prompt_tokens
        self.generated_tokens += last.generated_tokens


class CountedBackend:
    """An engine that tallies every stream sent to it, in total and by program.

    A program's tally stays until `take_program` collects it (the runtime does, when the
    run ends)."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.total = UsageTally()
        self._by_program: dict[str, UsageTally] = {}

    def capacity(self) -> int:
        return self.inner.capacity()

    def kv_capacity_tokens(self) -> int | None:
        return kv_capacity_of(self.inner)

    async def close(self) -> None:
        await self.inner.close()

    def take_program(self, program_id: str) -> UsageTally:
        """The program's tally on this engine, forgotten here once taken."""
        return self._by_program.pop(program_id, UsageTally())

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        last: Chunk | None = None
        failed = False  # an abort (the consumer closed the stream) is no failure
        try:
            async with aclosing(self.inner.generate(request)) as stream:
                async for chunk in stream:
                    last = chunk
                    yield chunk
        except Exception:
            failed = True
            raise
        finally:
            program = self._by_program.setdefault(request.program_id, UsageTally())
            for tally in (self.total, program):
                tally.count(last, failed=failed)
