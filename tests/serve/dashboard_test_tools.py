"""A tool for the dashboard's browser tests (not a test module): `gate` waits until a
file exists, so a test decides when each node finishes instead of guessing how long it
takes. Loaded by `taskloom serve --tools dashboard_test_tools`."""

from __future__ import annotations

import os

import anyio

from taskloom.tools.registry import tool

POLL_S = 0.05


@tool
async def gate(path: str, value: int = 0) -> dict[str, object]:
    """Wait until the file `path` exists, then pass `value + 1` on.

    Args:
        path: the file whose creation opens the gate.
        value: a number to pass on.
    """
    while not os.path.exists(path):
        await anyio.sleep(POLL_S)
    return {"value": value + 1}
