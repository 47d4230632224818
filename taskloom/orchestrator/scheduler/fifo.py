"""First come, first served, with a cap on calls in flight.

This is what a plain engine does. The cap defaults to the backend's capacity so the engine
can batch everything it is given without a queue building up inside it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import replace

import anyio

from taskloom.backends.base import Backend, Chunk, GenerateRequest


class FifoScheduler:
    def __init__(self, backend: Backend, max_in_flight: int | None = None) -> None:
        self.backend = backend
        limit = max_in_flight if max_in_flight is not None else backend.capacity()
        if limit < 1:
            raise ValueError(f"max_in_flight must be at least 1, got {limit}")
        # anyio's semaphore wakes waiters in arrival order, which is exactly FIFO.
        self._slots = anyio.Semaphore(limit)

    async def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        arrived = anyio.current_time()
        async with self._slots:
            queued_s = anyio.current_time() - arrived
            async with aclosing(self.backend.generate(request)) as stream:
                async for chunk in stream:
                    yield replace(chunk, queued_s=queued_s) if queued_s else chunk

    async def close(self) -> None:
        await self.backend.close()
