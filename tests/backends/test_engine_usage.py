"""Counting what goes through one engine, in total and per program."""

from __future__ import annotations

import pytest

from taskloom.backends.base import GenerateRequest, collect, kv_capacity_of
from taskloom.backends.engine_usage import CountedBackend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BackendError


def request(call_id: str, program: str) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt="two words", program_id=program)


@pytest.mark.anyio
async def test_finished_failed_and_aborted_streams_are_counted_per_program() -> None:
    counted = CountedBackend(ScriptedBackend(respond=lambda r: "a b c"))
    await collect(counted.generate(request("1", "p")))
    await collect(counted.generate(request("2", "q")))
    stream = counted.generate(request("3", "p"))
    await anext(stream)
    await stream.aclose()  # the consumer gave up: an abort, not a failure
    p, q = counted.take_program("p"), counted.take_program("q")
    assert (p.attempts, p.calls, p.failed_attempts, p.generated_tokens) == (2, 1, 0, 4)
    assert (q.attempts, q.calls, q.prompt_tokens) == (1, 1, 2)
    assert counted.total.attempts == 3 and counted.take_program("p").attempts == 0


@pytest.mark.anyio
async def test_a_stream_the_engine_breaks_is_a_failed_attempt() -> None:
    counted = CountedBackend(ScriptedBackend(respond=lambda r: "a b c", fail_after_chunks=1))
    with pytest.raises(BackendError):
        await collect(counted.generate(request("1", "p")))
    tally = counted.take_program("p")
    assert (tally.attempts, tally.calls, tally.failed_attempts) == (1, 0, 1)


class SizedScripted(ScriptedBackend):
    def kv_capacity_tokens(self) -> int | None:
        return 4096


def test_the_counted_engine_says_its_inner_engines_kv_capacity() -> None:
    assert kv_capacity_of(CountedBackend(SizedScripted())) == 4096
    assert kv_capacity_of(CountedBackend(ScriptedBackend())) is None  # it does not say
