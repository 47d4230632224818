"""The engine seam: requests in, streamed chunks out.

A backend does not know about programs. It sees requests that carry a priority and an id
it can abort. Cancelling the iterator returned by `generate` aborts the request in the
engine.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None


@dataclass(frozen=True)
class GenerateRequest:
    """One LLM call. `prompt` is raw text; `messages` is a chat to render with the
    model's chat template. Exactly one of them is set.

    `priority` follows vLLM: a lower value runs earlier.
    """

    call_id: str
    sampling: SamplingParams = field(default_factory=SamplingParams)
    prompt: str | None = None
    messages: tuple[Message, ...] | None = None
    json_schema_text: str | None = None
    model: str | None = None
    program_id: str = ""
    thread_id: str = ""
    parent_call_ids: tuple[str, ...] = ()
    priority: int = 0

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("GenerateRequest needs exactly one of prompt or messages")

    @property
    def json_schema(self) -> dict[str, Any] | None:
        if self.json_schema_text is None:
            return None
        schema: dict[str, Any] = json.loads(self.json_schema_text)
        return schema

    @staticmethod
    def schema_text(schema: Mapping[str, Any] | None) -> str | None:
        """Serialize a schema so the frozen request stays hashable and comparable."""
        return None if schema is None else json.dumps(schema, sort_keys=True)


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed answer.

    `text` is the new text since the previous chunk. Token counts are cumulative for the
    request, so the last chunk holds the totals.
    """

    text: str
    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_prompt_tokens: int = 0
    finished: bool = False
    finish_reason: str | None = None


@runtime_checkable
class Backend(Protocol):
    """An engine. `generate` streams one request; cancelling the stream aborts it."""

    name: str

    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]: ...

    def capacity(self) -> int:
        """How many calls the engine should have in flight at once."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class Completion:
    """A whole answer, assembled from a stream of chunks."""

    text: str
    prompt_tokens: int
    generated_tokens: int
    cached_prompt_tokens: int
    finish_reason: str | None


async def collect(stream: AsyncIterator[Chunk]) -> Completion:
    """Drain a stream into one `Completion`."""
    parts: list[str] = []
    last = Chunk(text="")
    async for chunk in stream:
        parts.append(chunk.text)
        last = chunk
    return Completion(
        text="".join(parts),
        prompt_tokens=last.prompt_tokens,
        generated_tokens=last.generated_tokens,
        cached_prompt_tokens=last.cached_prompt_tokens,
        finish_reason=last.finish_reason,
    )
