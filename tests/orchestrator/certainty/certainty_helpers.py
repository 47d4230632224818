"""Helpers for the certainty tests: virtual time and scripted samples."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import anyio
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest

T = TypeVar("T")


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    """Run `main` on trio with a clock that jumps to the next sleep's end."""
    clock = MockClock(autojump_threshold=0)
    return anyio.run(main, backend="trio", backend_options={"clock": clock})


def sample_index(request: GenerateRequest) -> int:
    """The sample number a node runner puts at the end of a call id ("/s3")."""
    return int(request.call_id.rsplit("/s", 1)[1].split("/")[0])


def scripted_samples(
    answers: Sequence[str], lengths: Sequence[int]
) -> Callable[[GenerateRequest], str]:
    """A responder whose sample i thinks for lengths[i] words, then answers answers[i]."""

    def respond(request: GenerateRequest) -> str:
        index = sample_index(request)
        thinking = " ".join(f"step{i}" for i in range(lengths[index]))
        return f"{thinking} answer: {answers[index]}".strip()

    return respond
