"""A small MCP server the tests start (stdio by default, `--http PORT` for streamable
HTTP), written with the SDK's MCPServer (FastMCP in mcp 1.x)."""

from __future__ import annotations

import os
import sys
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("taskloom-test", log_level="WARNING")
_in_flight = 0
_most_in_flight = 0
_arrived = anyio.Event()


@server.tool()
async def echo(text: str, wait_for: int = 1) -> dict[str, Any]:
    """Echo `text` once `wait_for` calls are in flight together (at most 20 s)."""
    global _in_flight, _most_in_flight, _arrived
    _in_flight += 1
    _most_in_flight = max(_most_in_flight, _in_flight)
    _arrived.set()
    _arrived = anyio.Event()
    with anyio.move_on_after(20):
        while _in_flight < wait_for:
            await _arrived.wait()
    result = {"text": text, "in_flight": _in_flight}
    await anyio.sleep(0)
    _in_flight -= 1
    return result


@server.tool()
def most_in_flight() -> int:
    """The most echo calls that were ever in flight at once."""
    return _most_in_flight


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def weather(city: str, days: int = 1) -> dict[str, Any]:
    """A made-up forecast for a city."""
    return {"city": city, "days": days, "temperature_c": 10 + len(city)}


@server.tool(structured_output=False)
def plain(text: str) -> str:
    """Text content only, no structured content."""
    return f"plain {text}"


@server.tool()
def pid() -> int:
    """This server's process id."""
    return os.getpid()


@server.tool()
def fail(reason: str) -> str:
    """Always fails with `reason`."""
    raise ToolError(reason)


@server.tool()
async def crash(ctx: Context) -> str:
    """Kills the server process."""
    await ctx.report_progress(0.5, 1.0, "crashing")
    os._exit(3)


@server.tool()
async def sleep(seconds: float) -> str:
    """Sleeps, then answers."""
    await anyio.sleep(seconds)
    return "slept"


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", port=int(sys.argv[2]))
    else:
        server.run()
