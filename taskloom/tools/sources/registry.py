"""Which tool-source kinds exist, looked up by the type of their declaration."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from taskloom.errors import ToolError
from taskloom.tools.sources.base import ToolSourceKind


class ToolSourceRegistry:
    """Declaration type -> the source kind that opens it."""

    def __init__(self) -> None:
        self._kinds: dict[type, ToolSourceKind[Any]] = {}

    def register(self, kind: ToolSourceKind[Any], *, replace: bool = False) -> None:
        if kind.config_type in self._kinds and not replace:
            raise ToolError(f"a tool source for {kind.config_type.__name__} is registered")
        self._kinds[kind.config_type] = kind

    def unregister(self, kind: ToolSourceKind[Any]) -> None:
        self._kinds.pop(kind.config_type, None)

    def get_kind(self, config: object) -> ToolSourceKind[Any]:
        kind = self._kinds.get(type(config))
        if kind is None:
            raise ToolError(f"no tool source opens a {type(config).__name__}")
        return kind

    def names(self) -> list[str]:
        return sorted(kind.name for kind in self._kinds.values())

    @contextmanager
    def registered(self, kind: ToolSourceKind[Any]) -> Iterator[None]:
        """`kind` known inside the block only (for tests)."""
        self.register(kind)
        try:
            yield
        finally:
            self.unregister(kind)


tool_sources = ToolSourceRegistry()
"""The source kinds a runtime can open. Filled in `taskloom.tools.sources` (MCP)."""
