"""Open tool sources, one connection per declared source for as long as a runtime lives.

A connection (an MCP client session, say) is entered and left by the same task, as
anyio requires, so each lives in a task of the pool's own task group: connecting starts
that task and waits until the source is open; closing the pool tells every task to
leave its connection. A source whose connection was lost (its server died) is opened
again by the next run that asks for it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from taskloom.tools.sources.base import ToolSet, ToolSourceKind
from taskloom.tools.sources.registry import ToolSourceRegistry, tool_sources

logger = logging.getLogger(__name__)
_Key = tuple[str, str, str]


class SourceConnections:
    """The open sources of one runtime; the same declaration is opened once."""

    def __init__(self, group: TaskGroup, kinds: ToolSourceRegistry = tool_sources) -> None:
        self._group = group
        self._kinds = kinds
        self._open: dict[_Key, ToolSet] = {}
        self._leave: dict[_Key, anyio.Event] = {}
        self._locks: dict[_Key, anyio.Lock] = {}

    @classmethod
    @asynccontextmanager
    async def open(
        cls, kinds: ToolSourceRegistry = tool_sources
    ) -> AsyncIterator[SourceConnections]:
        """A pool whose connections are all closed when the block ends."""
        async with anyio.create_task_group() as group:
            pool = cls(group, kinds)
            try:
                yield pool
            finally:
                for leave in pool._leave.values():
                    leave.set()

    async def connect(self, source: str, config: Any, *, base_dir: Path | None) -> ToolSet:
        """The tools of `config`, opened now or already open, named `source`. Raises
        `SourceUnavailable` when it cannot be opened (a later call tries again)."""
        key = _key_of(config, base_dir)
        async with self._locks.setdefault(key, anyio.Lock()):
            if key in self._open and self._open[key].connection.lost:
                self._leave.pop(key).set()
                del self._open[key]
            if key not in self._open:
                kind = self._kinds.get_kind(config)
                leave = anyio.Event()
                self._open[key] = await self._group.start(
                    self._hold, kind, source, config, base_dir, leave
                )
                self._leave[key] = leave
        return dataclasses.replace(self._open[key], source=source)

    async def connect_all(
        self, declared: Mapping[str, Any], *, base_dir: Path | None
    ) -> list[ToolSet]:
        return [
            await self.connect(source, config, base_dir=base_dir)
            for source, config in declared.items()
        ]

    async def _hold(
        self,
        kind: ToolSourceKind[Any],
        source: str,
        config: Any,
        base_dir: Path | None,
        leave: anyio.Event,
        *,
        task_status: TaskStatus[ToolSet],
    ) -> None:
        opened = False
        try:
            async with kind.connect(source, config, base_dir=base_dir) as tool_set:
                opened = True
                task_status.started(tool_set)
                await leave.wait()
        except Exception as exc:
            if not opened:
                raise
            # Failed after it opened (a server that died): each call made since has
            # already failed as a node error; the runtime itself goes on.
            logger.info("tool source '%s' closed with an error: %s", source, exc)


def _key_of(config: Any, base_dir: Path | None) -> _Key:
    dump = config.model_dump_json() if hasattr(config, "model_dump_json") else repr(config)
    return (type(config).__name__, dump, str(base_dir))

