"""The tool-source seam: where tools come from besides Python functions.

A source kind (MCP is one) turns a declared source, such as one entry of a spec's
`mcp_servers:`, into an open connection that offers a `ToolSet`. Its tools are called
as `SOURCE.TOOL`. Adding a kind is one module (a `ToolSourceKind`) and one registration
(`taskloom.tools.sources.registry.tool_sources`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel, ConfigDict

from taskloom.errors import ToolError
from taskloom.tools.tool import Tool

ConfigT = TypeVar("ConfigT")


class SourceUnavailable(ToolError):
    """A source could not be reached, or its tools could not be listed."""


class Connection:
    """Whether a source's connection is still there; the source kind marks it lost
    (a plain flag: it is read and set on one event loop)."""

    def __init__(self) -> None:
        self.lost = False

    def mark_lost(self) -> None:
        self.lost = True


@dataclass(frozen=True)
class ToolSet:
    """The tools one open source offers, by their own names (without the `SOURCE.`).

    `complete=False` marks a source that was not reached (`validate --offline`): any
    `SOURCE.TOOL` is then taken on trust, and `unreachable` says why. A source kind sets
    its `connection` lost when it is gone for good (its server died).
    """

    source: str
    tools: Mapping[str, Tool] = field(default_factory=dict)
    complete: bool = True
    unreachable: str | None = None
    connection: Connection = field(default_factory=Connection, compare=False)

    def qualified_names(self) -> list[str]:
        return [f"{self.source}.{name}" for name in sorted(self.tools)]


class ToolSourceKind(ABC, Generic[ConfigT]):
    """One kind of tool source. `config_type` is the declaration it opens."""

    name: ClassVar[str]
    config_type: ClassVar[type]

    @abstractmethod
    def connect(
        self, source: str, config: ConfigT, *, base_dir: Path | None
    ) -> AbstractAsyncContextManager[ToolSet]:
        """Open `config` as the source called `source`; the tool set lives until the
        block ends. `base_dir`: the folder of the spec that declared it, if any.
        Raises `SourceUnavailable` when it cannot be reached."""


class _AnyArguments(BaseModel):
    model_config = ConfigDict(extra="allow")


@dataclass(frozen=True)
class UncheckedTool(Tool):
    """A tool of a source that was not reached: any arguments pass the checks made
    before a run, and calling it fails with the reason the source was not reached."""

    reason: str = ""

    @property
    def input_schema(self) -> dict[str, Any]:
        return {"type": "object"}

    def check_static_args(
        self, literal_args: Mapping[str, Any], templated: Collection[str]
    ) -> list[str]:
        return []


def unchecked_tool(name: str, reason: str) -> UncheckedTool:
    async def unreachable(**arguments: Any) -> Any:
        raise SourceUnavailable(f"tool '{name}': {reason}")

    return UncheckedTool(name=name, description="", input_model=_AnyArguments,
                         fn=unreachable, is_async=True, reason=reason)
