"""One lifecycle for every backend: made, opened once, closed once.

A backend object is cheap to make and holds nothing yet; `async with backend:` opens it
(starts the engine, connects, starts a loop task) and closes it on the way out. The
states only move forward:

    new --open--> opening --> open --close--> closed

Opening a second time, or opening a closed backend, is a `BackendError`; so is sending a
request to a closed backend, or to one that needs opening before it can serve.
Closing is idempotent (schedulers close their backends too), and it is shielded: a
cancelled caller still frees the engine. If opening fails or is cancelled half-way, what
was already acquired is released before the error goes on.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Self

import anyio

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.errors import BackendError


class BackendState(enum.Enum):
    NEW = "new"
    OPENING = "opening"
    OPEN = "open"
    CLOSED = "closed"


class ManagedBackend(ABC):
    """A `Backend` with the lifecycle above. Subclasses fill in two hooks:

    - `_open(context)`: acquire the engine. Resources that must be left in the task that
      entered them (task groups, cancel scopes) go on `context`, which is unwound when the
      `async with` block ends.
    - `_release()`: free what `_open` acquired (safe to call from any task, more than
      once, and after a partial `_open`).

    `needs_open` says whether the backend refuses requests before it was opened.
    """

    name: str
    needs_open = True
    _state = BackendState.NEW
    _context: AsyncExitStack | None = None

    @abstractmethod
    def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]: ...

    @abstractmethod
    def capacity(self) -> int:
        """How many calls the engine should have in flight at once."""

    @abstractmethod
    async def _open(self, context: AsyncExitStack) -> None:
        """Acquire the engine."""

    @abstractmethod
    async def _release(self) -> None:
        """Free what `_open` acquired; may run more than once, and after a partial
        `_open`."""

    @property
    def state(self) -> BackendState:
        return self._state

    @property
    def closed(self) -> bool:
        return self._state is BackendState.CLOSED

    async def __aenter__(self) -> Self:
        self._refuse_reopen()
        self._state = BackendState.OPENING
        context = AsyncExitStack()
        try:
            await self._open(context)
        except BaseException:
            await self.close()
            await _unwind(context)
            raise
        if self._state is not BackendState.OPENING:  # closed while it was opening
            with anyio.CancelScope(shield=True):
                await self._release()
            await _unwind(context)
            raise BackendError(f"the {self.name} backend was closed while it was opening")
        self._context = context
        self._state = BackendState.OPEN
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
        context, self._context = self._context, None
        if context is not None:
            await _unwind(context)

    async def close(self) -> None:
        """Free the engine; later requests fail. Closing again does nothing."""
        if self._state is BackendState.CLOSED:
            return
        self._state = BackendState.CLOSED
        with anyio.CancelScope(shield=True):
            await self._release()

    def _require_open(self) -> None:
        """Raise the `BackendError` a request to this backend gets in its state."""
        if self._state is BackendState.CLOSED:
            raise BackendError(f"the {self.name} backend is closed; open a new one")
        if self._state is not BackendState.OPEN and self.needs_open:
            raise BackendError(
                f"the {self.name} backend is not open yet: use "
                f"`async with open_backend({self.name!r}, ...) as engine:`"
            )

    def _refuse_reopen(self) -> None:
        if self._state is BackendState.CLOSED:
            raise BackendError(
                f"the {self.name} backend was closed and cannot open again; make a new one"
            )
        if self._state is not BackendState.NEW:
            raise BackendError(f"the {self.name} backend is already open; it opens once")


async def _unwind(context: AsyncExitStack) -> None:
    """Leave what `_open` entered. Not under a shield of our own: a task group on
    `context` must exit outside any cancel scope entered after it. (It waits for its
    tasks regardless, and `_release` has already stopped them.)"""
    await context.aclose()
