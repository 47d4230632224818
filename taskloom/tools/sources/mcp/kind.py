"""MCP servers as a tool source: `mcp_servers:` entries, opened as client sessions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from taskloom.program.mcp_servers import McpServerSpec
from taskloom.tools.sources.base import Connection, ToolSet, ToolSourceKind


class McpSourceKind(ToolSourceKind[McpServerSpec]):
    name = "mcp"
    config_type = McpServerSpec

    @asynccontextmanager
    async def connect(
        self, source: str, config: McpServerSpec, *, base_dir: Path | None
    ) -> AsyncIterator[ToolSet]:
        # Lazy: the SDK takes about a second to import, which every `taskloom validate`
        # of a spec without MCP servers would otherwise pay.
        from taskloom.tools.sources.mcp.session import open_session
        from taskloom.tools.sources.mcp.tool import mcp_tool  # lazy too: imports the SDK

        async with open_session(source, config, base_dir=base_dir) as (session, listed):
            connection = Connection()
            tools = {
                remote.name: mcp_tool(source, remote, session, config.call_timeout, connection)
                for remote in listed
            }
            yield ToolSet(source, tools, connection=connection)
