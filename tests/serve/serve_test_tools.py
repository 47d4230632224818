"""Tools for the server and crash tests (not a test module): each call appends one line,
`KEY TOKEN`, to a counter file when it finishes, so a test can count how often each node
ran. Loaded by `taskloom serve --tools serve_test_tools`, or as `serve_test_tools:tick`."""

from __future__ import annotations

import os
import uuid

import anyio

from taskloom.tools.registry import tool


@tool
async def tick(counter: str, key: str, value: int = 0, sleep_s: float = 0.0) -> dict[str, object]:
    """Wait, then count one call and pass `value + 1` on.

    Args:
        counter: the file to append to.
        key: what to count this call as.
        value: a number to pass on.
        sleep_s: seconds to wait first.
    """
    await anyio.sleep(sleep_s)
    token = uuid.uuid4().hex
    with open(counter, "a", encoding="utf-8") as file:
        file.write(f"{key} {token}\n")
        file.flush()
        os.fsync(file.fileno())
    return {"value": value + 1, "token": token}


def counts(counter: str) -> dict[str, list[str]]:
    """KEY -> the tokens of its calls, in order."""
    found: dict[str, list[str]] = {}
    if not os.path.exists(counter):
        return found
    with open(counter, encoding="utf-8") as file:
        for line in file:
            key, _, token = line.strip().partition(" ")
            if key:
                found.setdefault(key, []).append(token)
    return found
