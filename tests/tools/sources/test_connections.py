"""The tool-source seam with a toy source kind: registration, one connection per
declaration for as long as the pool lives, and tools reached as SOURCE.TOOL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from taskloom.tools.registry import ToolNotFound, default_registry, tool
from taskloom.tools.sources import (
    SourceConnections,
    SourceUnavailable,
    ToolSet,
    ToolSourceKind,
    ToolSourceRegistry,
)
from taskloom.tools.sources.base import UncheckedTool


class ToyConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    greeting: str
    reachable: bool = True


class ToySource(ToolSourceKind[ToyConfig]):
    name = "toy"
    config_type = ToyConfig

    def __init__(self) -> None:
        self.opened: list[str] = []
        self.closed: list[str] = []

    @asynccontextmanager
    async def connect(
        self, source: str, config: ToyConfig, *, base_dir: Path | None
    ) -> AsyncIterator[ToolSet]:
        if not config.reachable:
            raise SourceUnavailable(f"toy source '{source}' is down")

        @tool(name=f"{source}.hello")
        def hello(name: str) -> str:
            """Greets."""
            return f"{config.greeting}, {name}"

        self.opened.append(source)
        try:
            yield ToolSet(source, {"hello": hello})
        finally:
            self.closed.append(source)


@pytest.mark.anyio
async def test_a_declaration_is_opened_once_and_closed_with_the_pool() -> None:
    kinds, toy = ToolSourceRegistry(), ToySource()
    kinds.register(toy)
    async with SourceConnections.open(kinds) as pool:
        first = await pool.connect("a", ToyConfig(greeting="hi"), base_dir=None)
        again = await pool.connect("b", ToyConfig(greeting="hi"), base_dir=None)
        other = await pool.connect("c", ToyConfig(greeting="yo"), base_dir=None)
        with pytest.raises(SourceUnavailable, match="toy source 'd' is down"):
            await pool.connect("d", ToyConfig(greeting="x", reachable=False), base_dir=None)
        assert toy.opened == ["a", "c"] and toy.closed == []
        assert (first.source, again.source, other.source) == ("a", "b", "c")
        assert again.tools is first.tools
        tools = default_registry().with_sources([first, other])
        assert await tools.get("c.hello").call({"name": "Ada"}) == "yo, Ada"
    assert sorted(toy.closed) == ["a", "c"]


def test_a_kind_is_registered_by_the_type_it_opens() -> None:
    kinds = ToolSourceRegistry()
    with kinds.registered(ToySource()):
        assert kinds.names() == ["toy"]
        assert isinstance(kinds.get_kind(ToyConfig(greeting="hi")), ToySource)
    with pytest.raises(Exception, match="no tool source opens a ToyConfig"):
        kinds.get_kind(ToyConfig(greeting="hi"))


@pytest.mark.anyio
async def test_source_tools_are_named_listed_and_suggested() -> None:
    @tool(name="toy.hello")
    def hello(name: str) -> str:
        """Greets."""
        return name

    base = default_registry()
    tools = base.with_sources([ToolSet("toy", {"hello": hello})])
    assert "toy.hello" in tools.names() and "toy.hello" not in base.names()
    assert tools.get("toy.hello") is hello
    with pytest.raises(ToolNotFound, match=r"did you mean 'toy\.hello'"):
        tools.get("toy.helo")
    assert [s.source for s in tools.tool_sets()] == ["toy"]


@pytest.mark.anyio
async def test_a_source_not_reached_takes_its_tools_on_trust() -> None:
    tools = default_registry().with_sources(
        [ToolSet("far", complete=False, unreachable="skipped (--offline)")]
    )
    far = tools.get("far.anything")
    assert isinstance(far, UncheckedTool)
    assert far.check_static_args({"x": 1}, ["y"]) == []
    with pytest.raises(SourceUnavailable, match=r"tool 'far.anything': skipped \(--offline\)"):
        await far.call({"x": 1})
    assert "far.anything" not in tools.names()
