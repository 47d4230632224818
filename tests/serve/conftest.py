"""The server tests' fixture: servers started per test, stopped after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import Server, StartServer


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[StartServer]:
    """start_server(*serve_args) -> a started server, stopped after the test."""
    started: list[Server] = []

    def start(*args: str) -> Server:
        server = Server(list(args), tmp_path)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
