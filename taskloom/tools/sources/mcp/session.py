"""Opening one MCP server: its transport (a subprocess over stdio, or streamable HTTP),
an initialized client session over it, and the list of its tools."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import AbstractContextManager, AsyncExitStack, asynccontextmanager, nullcontext
from pathlib import Path
from typing import Any, TextIO

import anyio
import httpx2
import mcp_types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from taskloom.program.mcp_servers import McpServerSpec
from taskloom.tools.sources.base import SourceUnavailable

# A stdio command whose program is `python` runs under the interpreter that runs taskloom,
# so that a spec's server finds the same installed packages (the `mcp` SDK among them).
PYTHON_ALIASES = ("python", "python3")
_MAX_TOOL_PAGES = 100


@asynccontextmanager
async def open_session(
    source: str, config: McpServerSpec, *, base_dir: Path | None
) -> AsyncIterator[tuple[ClientSession, list[mcp_types.Tool]]]:
    """An initialized session with `config`'s server and its tools, until the block ends."""
    opened = False
    try:
        async with AsyncExitStack() as stack:
            errlog = stack.enter_context(_server_log())
            read, write = await stack.enter_async_context(_transport(config, base_dir, errlog))
            session = await stack.enter_async_context(ClientSession(read, write))
            # Only the requests are timed: a context entered inside a cancel scope
            # must also be left inside it.
            with anyio.fail_after(config.connect_timeout):
                await session.initialize()
                tools = await _list_tools(session)
            opened = True
            yield session, tools
    except Exception as exc:
        # A transport's failure often surfaces only as its task group unwinds, so the
        # whole block is watched until the session is open.
        if opened:
            raise
        if isinstance(exc, TimeoutError):
            raise SourceUnavailable(
                f"MCP server '{source}' ({config.describe()}) did not answer within "
                f"{config.connect_timeout:g}s"
            ) from None
        raise SourceUnavailable(
            f"cannot reach MCP server '{source}' ({config.describe()}): {_reason(exc)}"
        ) from None


def _transport(config: McpServerSpec, base_dir: Path | None, errlog: TextIO) -> Any:
    if config.command is not None:
        program, *args = config.command
        cwd = _working_dir(config.cwd, base_dir)
        return stdio_client(
            StdioServerParameters(
                command=sys.executable if program in PYTHON_ALIASES else program,
                args=args,
                env=config.env or None,
                cwd=cwd,
            ),
            errlog=errlog,
        )
    assert config.url is not None
    return _http_transport(config.url, config.headers)


@asynccontextmanager
async def _http_transport(url: str, headers: dict[str, str]) -> AsyncIterator[Any]:
    # The SDK's own timeouts (a long read: a response may be a held stream). A client
    # given to the SDK is ours to close.
    async with httpx2.AsyncClient(
        headers=headers, timeout=httpx2.Timeout(30.0, read=300.0)
    ) as client, streamable_http_client(url, http_client=client) as streams:
        yield streams


def _working_dir(cwd: str | None, base_dir: Path | None) -> Path | None:
    if cwd is None:
        return base_dir
    path = Path(cwd)
    return path if path.is_absolute() or base_dir is None else base_dir / path


def _server_log() -> AbstractContextManager[TextIO]:
    # A server's stderr goes to ours only when asked: FastMCP logs every call there.
    if os.environ.get("TASKLOOM_MCP_STDERR"):
        return nullcontext(sys.stderr)
    return open(os.devnull, "w")


async def _list_tools(session: ClientSession) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_MAX_TOOL_PAGES):
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if not cursor:
            break
    return tools


def _reason(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _reason(exc.exceptions[0])
    return str(exc) or type(exc).__name__
