"""taskloom as an MCP server: each program in a folder is a tool (`taskloom mcp`)."""

from taskloom.mcp_server.programs import ProgramTool, program_tools
from taskloom.mcp_server.server import ProgramServer, RuntimeSlot
from taskloom.mcp_server.transports import serve_http, serve_stdio

__all__ = [
    "ProgramServer",
    "ProgramTool",
    "RuntimeSlot",
    "program_tools",
    "serve_http",
    "serve_stdio",
]
