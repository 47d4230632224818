"""A deterministic test double for the `Backend` seam, like httpx's MockTransport.

This is taskloom's public test double: import it as `from taskloom import ScriptedBackend`
(or open it by name, `open_backend("scripted", respond=...)`). It never stands in for an
engine in a benchmark. Replies come from a function of the request (or a fixed text),
streamed a word at a time, with optional delays so that tests can observe overlap and
cancellation.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field

import anyio

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.errors import BackendError

Responder = Callable[[GenerateRequest], str]


@dataclass
class ScriptedBackend(ManagedBackend):
    """Answers every request with `respond(request)`.

    Like every backend it opens with `async with ScriptedBackend(...) as backend:`; having
    nothing to start, it also serves requests as a plain object, until it is closed.

    A request with `resume_text` gets the rest of that answer after `resume_text`, as a
    greedy model continuing its own interrupted answer would.

    `delay_s` is slept before the first chunk and `per_chunk_s` between chunks. The
    backend records every request it saw, which ones are in flight now, and which were
    aborted, so tests can prove that cancellation reached the engine.
    """

    respond: Responder = field(default=lambda request: "ok")
    delay_s: float = 0.0
    per_chunk_s: float = 0.0
    max_in_flight: int = 64
    fail_after_chunks: int | None = None
    name: str = "scripted"
    seen: list[GenerateRequest] = field(default_factory=list)
    in_flight: set[str] = field(default_factory=set)
    aborted: list[str] = field(default_factory=list)

    needs_open = False

    def capacity(self) -> int:
        return self.max_in_flight

    def num_unfinished_requests(self) -> int:
        """Requests in flight now (as `VLLMBackend` reports its engine's)."""
        return len(self.in_flight)

    async def _open(self, context: AsyncExitStack) -> None:
        """Nothing to start."""

    async def _release(self) -> None:
        """Nothing to free: requests after this one fail (`_require_open`)."""

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self._require_open()
        self.seen.append(request)
        self.in_flight.add(request.call_id)
        finished = False
        try:
            text = _continuation(self.respond(request), request.resume_text)
            prompt_tokens = _count_words(request)
            words = _split_keep_spaces(text)
            await anyio.sleep(self.delay_s)
            for i, word in enumerate(words):
                if self.fail_after_chunks is not None and i >= self.fail_after_chunks:
                    raise BackendError("scripted engine died mid-stream")
                last = i == len(words) - 1
                yield Chunk(
                    text=word,
                    prompt_tokens=prompt_tokens,
                    generated_tokens=i + 1,
                    finished=last,
                    finish_reason="stop" if last else None,
                )
                if not last:
                    await anyio.sleep(self.per_chunk_s)
            if not words:
                yield Chunk(text="", prompt_tokens=prompt_tokens, finished=True,
                            finish_reason="stop")
            finished = True
        finally:
            self.in_flight.discard(request.call_id)
            if not finished:
                self.aborted.append(request.call_id)


def _continuation(answer: str, resume_text: str) -> str:
    if resume_text and answer.startswith(resume_text):
        return answer[len(resume_text):]
    return answer


def _split_keep_spaces(text: str) -> list[str]:
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words) if w or i == 0]


def _count_words(request: GenerateRequest) -> int:
    resumed = len(request.resume_text.split())
    if request.prompt is not None:
        return len(request.prompt.split()) + resumed
    assert request.messages is not None
    return sum(len(m.content.split()) for m in request.messages) + resumed
