"""MCP servers the tests start: `mcp_test_server.py` over stdio (the runtime starts it)
or over streamable HTTP (a subprocess on a free loopback port). A helper of the MCP
tests, not a test module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from taskloom.program.mcp_servers import McpServerSpec

TEST_SERVER = Path(__file__).parent / "mcp_test_server.py"
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stdio_server(**options: object) -> McpServerSpec:
    return McpServerSpec.model_validate(
        {"command": [sys.executable, str(TEST_SERVER)], **options}
    )


@dataclass
class HttpServer:
    process: subprocess.Popen[bytes]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def spec(self, **options: object) -> McpServerSpec:
        return McpServerSpec.model_validate({"url": self.url, **options})

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()


@contextmanager
def http_server() -> Iterator[HttpServer]:
    """The test server over streamable HTTP, killed when the block ends."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(TEST_SERVER), "--http", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = HttpServer(process, port)
    try:
        _wait_until_listening(server)
        yield server
    finally:
        if process.poll() is None:
            server.kill()


def _wait_until_listening(server: HttpServer) -> None:
    # Polls for the port to open: a readiness wait, not a timing assertion.
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the MCP test server exited with {server.process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("the MCP test server did not start listening")


def spec_text(server: McpServerSpec, body: str, *, name: str = "t") -> str:
    """A spec that declares `server` as `name`, followed by `body` (YAML)."""
    declared = json.dumps(server.model_dump(mode="json", exclude_defaults=True))
    return f"name: mcp_test\nmcp_servers:\n  {name}: {declared}\n{body}"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
