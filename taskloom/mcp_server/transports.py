"""`taskloom mcp` over stdio or streamable HTTP. Either way the runtime opens beside the
protocol and closes when the protocol ends."""

from __future__ import annotations

import anyio
from mcp.server.stdio import stdio_server

from taskloom.mcp_server.server import ProgramServer, RuntimeOpener


async def serve_stdio(programs: ProgramServer, open_runtime: RuntimeOpener) -> None:
    """Serve on stdin/stdout until the client closes stdin. While it serves, anything
    else written to stdout (the engine's log) is sent to stderr by the SDK."""
    server = programs.build()
    closing = anyio.Event()
    async with stdio_server() as (read, write), anyio.create_task_group() as group:
        group.start_soon(programs.runtime.keep_open, open_runtime, closing)
        try:
            await server.run(read, write, server.create_initialization_options())
        finally:
            closing.set()


async def serve_http(
    programs: ProgramServer, open_runtime: RuntimeOpener, *, host: str, port: int
) -> None:
    """Serve streamable HTTP at http://HOST:PORT/mcp until interrupted."""
    # Lazy: only the HTTP transport needs uvicorn.
    import uvicorn

    app = programs.build().streamable_http_app(host=host)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning")
    closing = anyio.Event()
    async with anyio.create_task_group() as group:
        group.start_soon(programs.runtime.keep_open, open_runtime, closing)
        try:
            await uvicorn.Server(config).serve()
        finally:
            closing.set()
