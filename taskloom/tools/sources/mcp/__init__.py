"""Tools from Model Context Protocol servers (the official `mcp` SDK's client)."""

from taskloom.tools.sources.mcp.kind import McpSourceKind

__all__ = ["McpSourceKind"]
