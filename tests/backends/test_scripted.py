"""ScriptedBackend, the test double every engine-free test leans on."""

from __future__ import annotations

import anyio
import pytest

from taskloom.backends.base import Backend, GenerateRequest, Message, collect
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BackendError

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _request(call_id: str = "c1", prompt: str = "one two three") -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=prompt)


async def test_streams_the_reply_a_word_at_a_time() -> None:
    backend = ScriptedBackend(respond=lambda request: "alpha beta gamma")
    chunks = [chunk async for chunk in backend.generate(_request())]
    assert [chunk.text for chunk in chunks] == ["alpha ", "beta ", "gamma"]
    assert [chunk.generated_tokens for chunk in chunks] == [1, 2, 3]
    assert all(chunk.prompt_tokens == 3 for chunk in chunks)
    assert [chunk.finished for chunk in chunks] == [False, False, True]
    assert chunks[-1].finish_reason == "stop"
    assert backend.seen == [_request()] and not backend.in_flight and not backend.aborted


async def test_reply_depends_on_the_request() -> None:
    def shout(request: GenerateRequest) -> str:
        assert request.messages is not None
        return request.messages[-1].content.upper()

    backend = ScriptedBackend(respond=shout)
    chat = GenerateRequest(call_id="c", messages=(Message("user", "hi you"),))
    answer = await collect(backend.generate(chat))
    assert answer.text == "HI YOU"
    assert answer.prompt_tokens == 2


async def test_empty_reply_still_finishes() -> None:
    chunks = [c async for c in ScriptedBackend(respond=lambda r: "").generate(_request())]
    assert len(chunks) == 1
    only = chunks[0]
    assert (only.text, only.finished, only.finish_reason) == ("", True, "stop")


async def test_cancelled_consumer_is_recorded_as_aborted() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c d e f", per_chunk_s=10)
    received: list[str] = []
    with anyio.move_on_after(0.2):
        async for chunk in backend.generate(_request("slow")):
            received.append(chunk.text)
    assert received == ["a "]
    assert backend.aborted == ["slow"] and not backend.in_flight


async def test_in_flight_while_streaming() -> None:
    backend = ScriptedBackend(respond=lambda r: "x y", per_chunk_s=0.01)
    stream = backend.generate(_request("live"))
    await anext(stream)
    assert backend.in_flight == {"live"}
    await stream.aclose()
    assert backend.aborted == ["live"] and not backend.in_flight


async def test_failure_mid_stream_is_a_backend_error() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c", fail_after_chunks=1)
    received: list[str] = []
    with pytest.raises(BackendError, match="mid-stream"):
        async for chunk in backend.generate(_request()):
            received.append(chunk.text)
    assert received == ["a "]


async def test_closed_backend_refuses_requests() -> None:
    backend = ScriptedBackend(max_in_flight=5)
    assert isinstance(backend, Backend) and backend.capacity() == 5
    await backend.close()
    with pytest.raises(BackendError, match="closed"):
        await collect(backend.generate(_request()))
