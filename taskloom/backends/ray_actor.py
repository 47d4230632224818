"""One engine replica as a Ray actor: the engine runs inside the actor's process, and the
actor streams each call's chunks back (a Ray streaming generator).

The actor opens its backend by name (`open_backend`), so the same actor serves the
in-process vLLM engine or, in tests, the scripted double. It opens the backend on first
use, not in its constructor: a replica Ray restarts after a crash then starts its engine
again at the pool's next health check (`ping`), and the pool returns it to service.

Nothing here imports Ray: `ray_replicas.py` makes this class remote.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from taskloom.backends.base import Chunk, GenerateRequest, kv_capacity_of
from taskloom.backends.factory import open_backend
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.errors import BackendError


@dataclass(frozen=True)
class ReplicaSpec:
    """What each replica opens: `open_backend(backend, model=model, **options)`.
    Everything in it is sent to the actor, so it must pickle."""

    backend: str = "vllm"
    model: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplicaLoad:
    """What a replica holds now: the streams the actor is serving, and the requests its
    engine still tracks (None when the engine cannot say)."""

    streams: int
    engine_requests: int | None


@runtime_checkable
class CountsRequests(Protocol):
    """An engine that can say how many requests it still tracks (`VLLMBackend`, and the
    scripted double)."""

    def num_unfinished_requests(self) -> int: ...


class EngineReplica:
    """The actor: `generate` streams chunks; `ping` answers once the engine is up;
    `close` stops the engine."""

    def __init__(self, spec: ReplicaSpec) -> None:
        self._spec = spec
        self._backend: ManagedBackend | None = None
        self._stack = AsyncExitStack()
        self._opening = asyncio.Lock()
        self._streams = 0

    async def open(self) -> tuple[int, int | None]:
        """Start the engine (once); its capacity, and the tokens its KV cache holds
        (None: it does not say)."""
        engine = await self._engine()
        return engine.capacity(), kv_capacity_of(engine)

    async def ping(self) -> None:
        await self._engine()

    async def process_id(self) -> int:
        """The actor's process (its engine's processes are its children)."""
        return os.getpid()

    async def load(self) -> ReplicaLoad:
        backend = self._backend
        requests = backend.num_unfinished_requests() if isinstance(
            backend, CountsRequests) else None
        return ReplicaLoad(self._streams, requests)

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        backend = await self._engine()
        self._streams += 1
        stream = backend.generate(request)
        try:
            async for chunk in stream:
                yield chunk
        finally:
            # Ray cancels this task (or closes the generator) when the caller cancels
            # its stream; closing the engine's stream is what aborts the request there.
            self._streams -= 1
            await stream.aclose()

    async def close(self) -> None:
        stack, self._stack = self._stack, AsyncExitStack()
        self._backend = None
        await stack.aclose()

    async def _engine(self) -> ManagedBackend:
        async with self._opening:
            if self._backend is None:
                spec = self._spec
                backend = open_backend(spec.backend, model=spec.model, **spec.options)
                self._backend = await self._stack.enter_async_context(backend)
        if self._backend.closed:
            raise BackendError(f"the {self._spec.backend} engine of this replica is closed")
        return self._backend
