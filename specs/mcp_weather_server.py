"""A small MCP server for specs/mcp_tools.yaml: made-up forecasts, no network.

Written with the `mcp` SDK's MCPServer (FastMCP before mcp 2). taskloom starts it over
stdio when a run of the spec begins and stops it when the run's runtime closes; run it
yourself with `python specs/mcp_weather_server.py` (stdio) or `--http PORT`.
"""

from __future__ import annotations

import sys
import zlib
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("weather", log_level="WARNING")
_CONDITIONS = ("sunny", "cloudy", "rain", "wind", "snow")


@server.tool()
def forecast(city: str, days: int = 1) -> dict[str, Any]:
    """The forecast for a city: one high, low and condition per day (1 to 7 days)."""
    if not 1 <= days <= 7:
        raise ToolError(f"days must be from 1 to 7, got {days}")
    seed = zlib.crc32(city.lower().encode())
    daily = [
        {
            "day": day + 1,
            "high_c": 5 + (seed >> (day * 3)) % 25,
            "low_c": (seed >> (day * 3)) % 10 - 2,
            "condition": _CONDITIONS[(seed >> day) % len(_CONDITIONS)],
        }
        for day in range(days)
    ]
    return {"city": city, "days": daily}


@server.tool()
def warmest(forecasts: list[dict[str, Any]]) -> dict[str, Any]:
    """The city with the highest high of all the given forecasts."""
    if not forecasts:
        raise ToolError("no forecasts given")
    best = max(forecasts, key=lambda f: max(day["high_c"] for day in f["days"]))
    return {"city": best["city"], "high_c": max(day["high_c"] for day in best["days"])}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--http":
        server.run("streamable-http", port=int(sys.argv[2]))
    else:
        server.run()
