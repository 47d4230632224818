"""The scheduling seam between the executor and the engines.

The executor never talks to a backend directly: it submits every LLM call here, and the
scheduler decides when the call reaches which engine.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Protocol, runtime_checkable

from taskloom.backends.base import Chunk, GenerateRequest


@runtime_checkable
class Scheduler(Protocol):
    def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        """Stream the answer to `request`. Closing or cancelling the stream aborts it."""
        ...

    async def close(self) -> None: ...
