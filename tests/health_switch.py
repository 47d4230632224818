"""A health probe the tests turn off and on: an engine that is up until told otherwise."""

from __future__ import annotations

from taskloom.errors import BackendError


class Switch:
    """A probe that fails while `up` is False."""

    def __init__(self) -> None:
        self.up = True

    async def __call__(self) -> None:
        if not self.up:
            raise BackendError("probe refused")
