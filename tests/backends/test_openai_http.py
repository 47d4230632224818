"""OpenAIBackend: the protocol against httpx.MockTransport, then a real vLLM server.

The real-server tests are marked `openai_server` and run in their own pytest session
(`pytest -m openai_server`), because a session keeps to one vLLM engine.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import httpx
import jsonschema
import pytest

from taskloom.backends.base import (
    Backend,
    Chunk,
    GenerateRequest,
    Message,
    SamplingParams,
    collect,
    kv_capacity_of,
)
from taskloom.backends.openai_http import (
    CHAT_PATH,
    COMPLETIONS_PATH,
    HEALTH_PATH,
    OpenAIBackend,
    iter_sse_data,
    request_path_and_body,
    server_root,
)
from taskloom.backends.vllm_metrics import METRICS_PATH
from taskloom.errors import BackendError

pytestmark = pytest.mark.anyio

BASE = "http://llm.test"
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _prompt(text: str = "Hello", **fields: Any) -> GenerateRequest:
    return GenerateRequest(call_id="c1", prompt=text, **fields)


def _chat(text: str = "Hello", **fields: Any) -> GenerateRequest:
    return GenerateRequest(call_id="c2", messages=(Message("user", text),), **fields)


def _sse(*events: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


def _completion_event(text: str, finish: str | None = None) -> dict[str, Any]:
    return {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}


def _usage_event(prompt: int, completion: int, cached: int | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion}
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    return {"choices": [], "usage": usage}


def _backend(handler: Handler, **options: Any) -> OpenAIBackend:
    return OpenAIBackend(BASE, "tiny", transport=httpx.MockTransport(_no_metrics(handler)),
                         **options)


def _no_metrics(handler: Handler) -> Handler:
    """`handler` on a server with no `/metrics` (the backend reads it once, on opening)."""
    def serve(request: httpx.Request) -> httpx.Response:
        if request.url.path == METRICS_PATH:
            return httpx.Response(404)
        return handler(request)

    return serve


async def _chunks(backend: OpenAIBackend, request: GenerateRequest) -> list[Chunk]:
    """Open `backend`, stream `request` through it, close it."""
    async with backend:
        return [chunk async for chunk in backend.generate(request)]


# --- request bodies -------------------------------------------------------------------


def test_server_root_accepts_both_forms() -> None:
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


def test_prompt_body_carries_sampling_and_usage_request() -> None:
    request = _prompt(sampling=SamplingParams(max_tokens=9, temperature=0.3, top_p=0.8,
                                              seed=4, stop=("END",), logprobs=2),
                      priority=3)
    path, body = request_path_and_body(request, "tiny")
    assert path == COMPLETIONS_PATH
    assert body["prompt"] == "Hello" and body["model"] == "tiny"
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (body["max_tokens"], body["temperature"], body["top_p"]) == (9, 0.3, 0.8)
    assert (body["seed"], body["stop"], body["logprobs"]) == (4, ["END"], 2)
    assert body["priority"] == 3


def test_chat_body_has_messages_schema_and_no_default_fields() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}
    request = _chat(json_schema_text=GenerateRequest.schema_text(schema), model="other")
    path, body = request_path_and_body(request, "tiny")
    assert path == CHAT_PATH
    assert body["messages"] == [{"role": "user", "content": "Hello"}]
    assert body["model"] == "other"
    assert body["response_format"] == {
        "type": "json_schema", "json_schema": {"name": "output", "schema": schema}}
    # Fields a plain OpenAI server may reject are only sent when they mean something.
    assert not {"priority", "seed", "stop", "logprobs"} & body.keys()


def test_resumed_prompt_continues_after_the_earlier_text() -> None:
    _, body = request_path_and_body(_prompt("Count:", resume_text=" 1, 2,"), "m")
    assert body["prompt"] == "Count: 1, 2,"


def test_resumed_chat_continues_an_unfinished_assistant_turn() -> None:
    _, body = request_path_and_body(_chat("Count.", resume_text="1, 2,"), "m")
    assert body["messages"][-1] == {"role": "assistant", "content": "1, 2,"}
    assert body["continue_final_message"] is True
    assert body["add_generation_prompt"] is False
    _, fresh = request_path_and_body(_chat("Count."), "m")
    assert "continue_final_message" not in fresh


def test_chat_logprobs_use_top_logprobs() -> None:
    _, body = request_path_and_body(_chat(sampling=SamplingParams(logprobs=3)), "m")
    assert (body["logprobs"], body["top_logprobs"]) == (True, 3)


# --- server-sent events ---------------------------------------------------------------


async def _lines(*lines: str) -> AsyncIterator[str]:
    for line in lines:
        yield line


async def test_sse_parser_joins_data_lines_and_skips_comments() -> None:
    lines = _lines(": keep-alive", "", "event: x", "data: a", "data:b", "", "data: [DONE]")
    assert [data async for data in iter_sse_data(lines)] == ["a\nb", "[DONE]"]


async def test_completion_stream_yields_deltas_then_totals() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        body = _sse(_completion_event("Hel"), _completion_event("lo"),
                    _completion_event("!", "stop"), _usage_event(5, 3, cached=4))
        return httpx.Response(200, content=body,
                              headers={"content-type": "text/event-stream"})

    chunks = await _chunks(_backend(handler, api_key="sk-test"), _prompt())
    assert [chunk.text for chunk in chunks] == ["Hel", "lo", "!", ""]
    assert [chunk.generated_tokens for chunk in chunks] == [1, 2, 3, 3]
    last = chunks[-1]
    assert last.finished and last.finish_reason == "stop"
    assert (last.prompt_tokens, last.cached_prompt_tokens) == (5, 4)
    assert not any(chunk.finished for chunk in chunks[:-1])
    assert seen[0].url.path == COMPLETIONS_PATH
    assert seen[0].headers["authorization"] == "Bearer sk-test"
    assert json.loads(seen[0].content)["prompt"] == "Hello"


async def test_chat_stream_reads_delta_content() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == CHAT_PATH
        events = [
            {"choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": "Hi"}, "finish_reason": None}]},
            {"choices": [{"index": 0, "delta": {"content": " there"},
                          "finish_reason": "length"}]},
            _usage_event(7, 2),
        ]
        return httpx.Response(200, content=_sse(*events))

    async with _backend(handler) as backend:
        answer = await collect(backend.generate(_chat()))
    assert answer.text == "Hi there"
    assert (answer.prompt_tokens, answer.generated_tokens) == (7, 2)
    assert answer.finish_reason == "length"


async def test_http_error_names_url_status_and_message() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"error": {"message": "prompt is too long"}})

    with pytest.raises(BackendError) as caught:
        await _chunks(_backend(handler), _prompt())
    message = str(caught.value)
    assert f"{BASE}{COMPLETIONS_PATH}" in message
    assert "HTTP 400" in message and "prompt is too long" in message


async def test_error_event_mid_stream_is_a_backend_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = _sse(_completion_event("a"), {"error": {"message": "engine died"}})
        return httpx.Response(200, content=body)

    with pytest.raises(BackendError, match="engine died"):
        await _chunks(_backend(handler), _prompt())


async def test_stream_cut_before_finish_is_a_backend_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=_sse(_completion_event("a"), done=False))

    with pytest.raises(BackendError, match="ended the stream"):
        await _chunks(_backend(handler), _prompt())


async def test_connection_dropped_mid_stream_is_a_backend_error() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield _sse(_completion_event("a"), done=False)
        raise httpx.RemoteProtocolError("peer closed connection")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body())

    received: list[str] = []
    with pytest.raises(BackendError, match="mid-stream") as caught:
        async with _backend(handler) as backend:
            async for chunk in backend.generate(_prompt()):
                received.append(chunk.text)
    assert received == ["a"]
    assert BASE in str(caught.value)


async def test_connection_refused_is_a_backend_error() -> None:
    with socket.socket() as probe:  # a port with nothing listening on it
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = OpenAIBackend(f"http://127.0.0.1:{port}", "tiny", timeout_s=5)
    with pytest.raises(BackendError, match="cannot connect"):
        await _chunks(backend, _prompt())


class _EndlessEvents(httpx.AsyncByteStream):
    """A response body that never ends and remembers whether the client closed it."""

    def __init__(self) -> None:
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i in range(10_000):
            yield _sse(_completion_event(f"t{i} "), done=False)
            await anyio.sleep(0)

    async def aclose(self) -> None:
        self.closed = True


async def test_leaving_the_stream_early_closes_the_response() -> None:
    body = _EndlessEvents()
    async with _backend(lambda request: httpx.Response(200, stream=body)) as backend:
        stream = backend.generate(_prompt())
        assert (await anext(stream)).text == "t0 "
        assert not body.closed
        await stream.aclose()
        assert body.closed


async def test_cancelling_the_consumer_closes_the_response() -> None:
    body = _EndlessEvents()
    received: list[Chunk] = []
    async with _backend(lambda request: httpx.Response(200, stream=body)) as backend:
        with anyio.CancelScope() as scope:
            async for chunk in backend.generate(_prompt()):
                received.append(chunk)
                if len(received) == 2:
                    scope.cancel()
    assert len(received) == 2 and body.closed


async def test_opening_without_a_model_discovers_the_served_model() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/v1/models"
        return httpx.Response(200, json={"data": [{"id": "served-model"}]})

    backend = OpenAIBackend(BASE + "/v1", transport=httpx.MockTransport(_no_metrics(handler)),
                            max_in_flight=3)
    assert backend.model == ""
    async with backend:
        assert backend.model == "served-model" and backend.capacity() == 3
        assert isinstance(backend, Backend)
    assert backend.closed


async def test_a_server_listing_no_models_fails_the_open_and_closes_the_client() -> None:
    backend = OpenAIBackend(BASE, transport=httpx.MockTransport(
        lambda request: httpx.Response(200, json={"data": []})))
    with pytest.raises(BackendError, match="lists no models"):
        async with backend:
            pytest.fail("opened without a model")
    assert backend.closed


# --- the KV cache's size, from vLLM's /metrics ------------------------------------------

VLLM_METRICS = """# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig
# TYPE vllm:cache_config_info gauge
vllm:cache_config_info{block_size="16",engine="0",num_gpu_blocks="4096"} 1.0
"""


async def test_opening_reads_the_kv_capacity_from_vllms_metrics() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(200, text=VLLM_METRICS)

    backend = _backend_on(handler)
    async with backend:
        assert backend.kv_capacity_tokens() == 4096 * 16
        assert kv_capacity_of(backend) == 4096 * 16
        await backend.check_health()
    assert paths == [METRICS_PATH, HEALTH_PATH]  # read once


async def test_a_server_without_metrics_has_no_kv_capacity_and_is_not_asked_again() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        return httpx.Response(404 if request.url.path == METRICS_PATH else 200, text="{}")

    backend = _backend_on(handler)
    async with backend:
        await backend.check_health()
        assert backend.kv_capacity_tokens() is None
    assert paths == [METRICS_PATH, HEALTH_PATH]


async def test_a_server_down_at_opening_is_read_at_its_first_passing_health_check() -> None:
    up = False

    def handler(request: httpx.Request) -> httpx.Response:
        if not up:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(200, text=VLLM_METRICS)

    backend = _backend_on(handler)
    async with backend:
        assert backend.kv_capacity_tokens() is None
        with pytest.raises(BackendError):
            await backend.check_health()
        up = True
        await backend.check_health()
        assert backend.kv_capacity_tokens() == 4096 * 16


def _backend_on(handler: Handler) -> OpenAIBackend:
    return OpenAIBackend(BASE, "tiny", transport=httpx.MockTransport(handler))


# --- a real vLLM server ---------------------------------------------------------------

def _running_requests(base_url: str) -> float:
    metrics = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    assert found, "the server exports vllm:num_requests_running"
    return float(found.group(1))


server_test = pytest.mark.openai_server
asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])


@server_test
async def test_a_real_server_says_how_many_tokens_its_kv_cache_holds(vllm_server: str) -> None:
    page = httpx.get(f"{vllm_server}{METRICS_PATH}", timeout=5).text
    blocks = re.search(r'^vllm:cache_config_info\{[^}]*num_gpu_blocks="(\d+)"', page, re.M)
    size = re.search(r'^vllm:cache_config_info\{[^}]*block_size="(\d+)"', page, re.M)
    assert blocks and size, "the server exports vllm:cache_config_info"
    async with OpenAIBackend(vllm_server) as backend:
        assert backend.kv_capacity_tokens() == int(blocks.group(1)) * int(size.group(1))
        assert backend.kv_capacity_tokens() >= 2048  # one whole context, at least


@server_test
async def test_server_streams_a_prompt(vllm_server: str) -> None:
    request = _prompt("The capital of France is",
                      sampling=SamplingParams(max_tokens=16, temperature=0.0))
    chunks = await _chunks(OpenAIBackend(vllm_server), request)
    assert len(chunks) >= 3
    last = chunks[-1]
    assert last.finished and last.finish_reason in ("stop", "length")
    assert last.prompt_tokens >= 5 and 1 <= last.generated_tokens <= 16


@server_test
@asyncio_only
async def test_server_chat_with_json_schema(vllm_server: str) -> None:
    schema = {"type": "object",
              "properties": {"city": {"type": "string", "maxLength": 30},
                             "population": {"type": "integer"}},
              "required": ["city", "population"], "additionalProperties": False}
    request = _chat("Name a city and its population as JSON.",
                    sampling=SamplingParams(max_tokens=80, temperature=0.7, seed=2),
                    json_schema_text=GenerateRequest.schema_text(schema))
    async with OpenAIBackend(vllm_server) as backend:
        answer = await collect(backend.generate(request))
    assert answer.finish_reason == "stop"
    jsonschema.validate(json.loads(answer.text), schema)


@server_test
@asyncio_only
async def test_server_accepts_priority_and_seed(vllm_server: str) -> None:
    async def sample(backend: OpenAIBackend, priority: int) -> str:
        request = _prompt("Once upon a time", priority=priority,
                          sampling=SamplingParams(max_tokens=16, temperature=1.0, seed=11))
        return (await collect(backend.generate(request))).text

    async with OpenAIBackend(vllm_server) as backend:
        first, second = await sample(backend, -3), await sample(backend, 7)
    assert first and first == second


@server_test
@asyncio_only
async def test_server_closing_the_stream_aborts_the_request(vllm_server: str) -> None:
    request = _prompt("1, 2, 3, 4, 5, 6, 7, 8,",
                      sampling=SamplingParams(max_tokens=1500, temperature=0.0))
    received: list[Chunk] = []
    async with OpenAIBackend(vllm_server) as backend:
        with anyio.CancelScope() as scope:
            async for chunk in backend.generate(request):
                received.append(chunk)
                if len(received) == 3:
                    assert _running_requests(vllm_server) == 1
                    scope.cancel()
    # Chunks already read off the socket may still be handed out after the cancel (the
    # generator parses a buffer without a checkpoint), but the stream ends by the cancel,
    # long before the answer's 1,500 tokens.
    assert scope.cancelled_caught
    assert len(received) >= 3 and not received[-1].finished
    with anyio.move_on_after(15):
        while _running_requests(vllm_server):
            await anyio.sleep(0.2)
    assert _running_requests(vllm_server) == 0


@server_test
@asyncio_only
async def test_server_resumes_a_preempted_chat_answer(vllm_server: str) -> None:
    greedy = SamplingParams(max_tokens=24, temperature=0.0)
    whole = _chat("List five fruits.", sampling=greedy)
    async with OpenAIBackend(vllm_server) as backend:
        chunks = [chunk async for chunk in backend.generate(whole)]
        head = "".join(chunk.text for chunk in chunks[:8])
        resumed = _chat("List five fruits.", resume_text=head,
                        sampling=SamplingParams(max_tokens=24 - 8, temperature=0.0))
        rest = await collect(backend.generate(resumed))
    assert len(chunks) > 9 and head
    # The server continued the unfinished assistant turn: its prompt is the first
    # prompt plus the head's tokens (give or take a merge at the seam), not a new turn.
    expected = chunks[-1].prompt_tokens + chunks[7].generated_tokens
    assert expected - 1 <= rest.prompt_tokens <= expected
    assert rest.text and 1 <= rest.generated_tokens <= 16


@server_test
@asyncio_only
async def test_server_rejection_is_a_backend_error(vllm_server: str) -> None:
    with pytest.raises(BackendError, match="HTTP 400"):
        await _chunks(OpenAIBackend(vllm_server), _prompt("word " * 5000))
