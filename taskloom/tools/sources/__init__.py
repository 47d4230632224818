"""Tool sources: tools that come from outside the process (MCP servers), called as
`SOURCE.TOOL`. Each kind is one module and one registration here."""

from taskloom.tools.sources.base import SourceUnavailable, ToolSet, ToolSourceKind
from taskloom.tools.sources.connections import SourceConnections
from taskloom.tools.sources.mcp import McpSourceKind
from taskloom.tools.sources.registry import ToolSourceRegistry, tool_sources

tool_sources.register(McpSourceKind())

__all__ = [
    "SourceConnections",
    "SourceUnavailable",
    "ToolSet",
    "ToolSourceKind",
    "ToolSourceRegistry",
    "tool_sources",
]
