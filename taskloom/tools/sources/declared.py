"""The sources a spec declares, looked at before a run: reached once to list their
tools (for `taskloom validate`), or taken on trust (checks made before a runtime
opens them itself)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskloom.tools.sources.base import SourceUnavailable, ToolSet
from taskloom.tools.sources.connections import SourceConnections


@dataclass(frozen=True)
class StandingSources:
    """Sources a runtime offers to every program (`serve --mcp-config`), declared in a
    file in `base_dir`."""

    declared: Mapping[str, Any]
    base_dir: Path | None = None


@dataclass(frozen=True)
class ReachedSources:
    """The tools of each source reached, and why each other one was not."""

    tool_sets: list[ToolSet] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)


def unchecked_sets(declared: Mapping[str, Any], reason: str) -> list[ToolSet]:
    """A tool set per source that takes any SOURCE.TOOL on trust."""
    return [ToolSet(name, complete=False, unreachable=reason) for name in declared]


async def reach_declared(declared: Mapping[str, Any], *, base_dir: Path | None) -> ReachedSources:
    """Open each source once, list its tools, and close it again."""
    reached = ReachedSources()
    async with SourceConnections.open() as pool:
        for name, config in declared.items():
            try:
                reached.tool_sets.append(await pool.connect(name, config, base_dir=base_dir))
            except SourceUnavailable as exc:
                reached.unreachable[name] = str(exc)
    return reached
