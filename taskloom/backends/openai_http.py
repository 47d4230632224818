"""A backend for any OpenAI-compatible server (vLLM's `api_server` among them).

Requests stream as server-sent events. `/v1/completions` serves raw prompts and
`/v1/chat/completions` serves chats. Aborting a request means closing its stream: leaving
the `client.stream(...)` block closes the connection, and vLLM drops the request when its
client goes away.

httpx runs on anyio, so this backend works under asyncio and trio alike.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

import httpx

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.backends.vllm_metrics import METRICS_PATH, kv_capacity_from_metrics
from taskloom.errors import BackendError

COMPLETIONS_PATH = "/v1/completions"
CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
HEALTH_PATH = "/health"  # vLLM's: it fails once the engine behind the server has died
DONE = "[DONE]"


def server_root(base_url: str) -> str:
    """Accept `http://host:port` or `http://host:port/v1`; return the former."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


def request_path_and_body(request: GenerateRequest, model: str) -> tuple[str, dict[str, Any]]:
    """The endpoint and JSON body for one streamed request."""
    chat = request.messages is not None
    body: dict[str, Any] = {"model": request.model or model, "stream": True,
                            "stream_options": {"include_usage": True}}
    body.update(_chat_fields(request) if chat else {"prompt": _resumed_prompt(request)})
    body.update(_sampling_fields(request, chat=chat))
    return (CHAT_PATH if chat else COMPLETIONS_PATH), body


def _resumed_prompt(request: GenerateRequest) -> str:
    assert request.prompt is not None
    return request.prompt + request.resume_text


def _chat_fields(request: GenerateRequest) -> dict[str, Any]:
    assert request.messages is not None
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    if not request.resume_text:
        return {"messages": messages}
    # A preempted answer is resumed as an unfinished assistant turn. These two fields
    # are vLLM's; plain OpenAI servers cannot continue a message.
    messages.append({"role": "assistant", "content": request.resume_text})
    return {"messages": messages, "add_generation_prompt": False,
            "continue_final_message": True}


def _sampling_fields(request: GenerateRequest, *, chat: bool) -> dict[str, Any]:
    sampling = request.sampling
    fields: dict[str, Any] = {"max_tokens": sampling.max_tokens,
                              "temperature": sampling.temperature, "top_p": sampling.top_p}
    if sampling.seed is not None:
        fields["seed"] = sampling.seed
    if sampling.stop:
        fields["stop"] = list(sampling.stop)
    if sampling.logprobs is not None:
        fields.update({"logprobs": True, "top_logprobs": sampling.logprobs} if chat
                      else {"logprobs": sampling.logprobs})
    # Plain OpenAI rejects fields it does not know; vLLM treats 0 as "no priority".
    if request.priority:
        fields["priority"] = request.priority
    schema = request.json_schema
    if schema is not None:
        fields["response_format"] = {"type": "json_schema",
                                     "json_schema": {"name": "output", "schema": schema}}
    return fields


async def iter_sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """Yield the `data` payload of each server-sent event (multi-line data joined)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
        # Comments (":") and the event/id/retry fields carry nothing we use.
    if data:
        yield "\n".join(data)


@dataclass
class _StreamTally:
    """Accumulates one stream's events into chunks; the final chunk holds the totals.

    Token counts arrive only in the last (usage) event, so until then
    `generated_tokens` counts content events, which is one token each on vLLM.
    """

    url: str
    content_events: int = 0
    prompt_tokens: int = 0
    generated_tokens: int | None = None
    cached_prompt_tokens: int = 0
    finish_reason: str | None = None

    def feed(self, event: dict[str, Any]) -> Chunk | None:
        if "error" in event:
            raise BackendError(f"{self.url} reported an error mid-stream: {_error_text(event)}")
        if usage := event.get("usage"):
            self._take_usage(usage)
        choices = event.get("choices") or []
        if not choices:
            return None
        choice = choices[0]
        self.finish_reason = choice.get("finish_reason") or self.finish_reason
        text = _choice_text(choice)
        if not text:
            return None
        self.content_events += 1
        return Chunk(text=text, prompt_tokens=self.prompt_tokens,
                     generated_tokens=self.content_events)

    def final(self) -> Chunk:
        if self.finish_reason is None:
            raise BackendError(f"{self.url} ended the stream before the answer finished")
        generated = self.generated_tokens
        return Chunk(
            text="",
            prompt_tokens=self.prompt_tokens,
            generated_tokens=self.content_events if generated is None else generated,
            cached_prompt_tokens=self.cached_prompt_tokens,
            finished=True,
            finish_reason=self.finish_reason,
        )

    def _take_usage(self, usage: dict[str, Any]) -> None:
        self.prompt_tokens = int(usage.get("prompt_tokens") or 0)
        self.generated_tokens = int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        self.cached_prompt_tokens = int(details.get("cached_tokens") or 0)


def _choice_text(choice: dict[str, Any]) -> str:
    if "delta" in choice:
        return str((choice["delta"] or {}).get("content") or "")
    return str(choice.get("text") or "")


def _error_text(payload: Any) -> str:
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        return str(error.get("message") or error)
    return str(error)


class OpenAIBackend(ManagedBackend):
    """Streams requests to an OpenAI-compatible server at `base_url`.

    `async with OpenAIBackend(base_url, model) as backend:` (or `open_backend("openai",
    ...)`) opens it; with no `model`, opening asks the server and takes the first model
    it lists. Leaving the block closes the connections. `transport` replaces the network
    (tests pass `httpx.MockTransport`).
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str | None = None,
        *,
        api_key: str | None = None,
        max_in_flight: int = 16,
        timeout_s: float = 600.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = server_root(base_url)
        self.model = model or ""
        self._max_in_flight = max_in_flight
        self._health_path = HEALTH_PATH
        self._kv_tokens: int | None = None
        self._kv_read = False  # whether the server has answered a read of /metrics
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            # The pool waits without limit: a scheduler that respects capacity() never
            # queues here, and one that does not should wait, not fail.
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 10.0), pool=None),
            # Two connections more than the streams: a health check never waits for one.
            limits=httpx.Limits(max_connections=max_in_flight + 2,
                                max_keepalive_connections=max_in_flight),
            transport=transport,
        )

    async def _open(self, context: AsyncExitStack) -> None:
        if not self.model:
            self.model = (await self.served_models())[0]
        await self._read_kv_capacity()

    def capacity(self) -> int:
        return self._max_in_flight

    def kv_capacity_tokens(self) -> int | None:
        """The server's KV cache in tokens, from vLLM's `/metrics`, read when the backend
        opened (or at the first health check that found the server up); None for a
        server that does not publish it."""
        return self._kv_tokens

    async def _read_kv_capacity(self) -> None:
        try:
            response = await self._client.get(METRICS_PATH)
        except httpx.HTTPError:
            return  # not up yet: tried again at the next passing health check
        self._kv_read = True
        if response.status_code < 400:
            self._kv_tokens = kv_capacity_from_metrics(response.text)

    async def _release(self) -> None:
        await self._client.aclose()

    async def served_models(self) -> list[str]:
        if self.closed:
            raise BackendError(f"the {self.name} backend is closed; open a new one")
        url = self.base_url + MODELS_PATH
        try:
            response = await self._client.get(MODELS_PATH)
        except httpx.HTTPError as error:
            raise _transport_error(url, error) from error
        if response.status_code >= 400:
            raise _status_error(url, response.status_code, response.text)
        models = [str(entry["id"]) for entry in response.json().get("data", [])]
        if not models:
            raise BackendError(f"{url} lists no models")
        return models

    async def check_health(self) -> None:
        """Raise `BackendError` unless the server answers its health check: `/health`,
        or `/v1/models` on a server that has no `/health` (not every one is vLLM)."""
        url = self.base_url + self._health_path
        try:
            response = await self._client.get(self._health_path)
        except httpx.HTTPError as error:
            raise _transport_error(url, error) from error
        if response.status_code == 404 and self._health_path != MODELS_PATH:
            self._health_path = MODELS_PATH
            return await self.check_health()
        if response.status_code >= 400:
            raise _status_error(url, response.status_code, response.text)
        if not self._kv_read:
            await self._read_kv_capacity()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self._require_open()
        path, body = request_path_and_body(request, self.model)
        url = self.base_url + path
        tally = _StreamTally(url)
        try:
            async with self._client.stream("POST", path, json=body) as response:
                await _check_status(response, url)
                async for data in iter_sse_data(response.aiter_lines()):
                    if data == DONE:
                        break
                    if (chunk := tally.feed(_parse_event(data, url))) is not None:
                        yield chunk
        except httpx.HTTPError as error:
            raise _transport_error(url, error) from error
        yield tally.final()


def _parse_event(data: str, url: str) -> dict[str, Any]:
    try:
        event = json.loads(data)
    except json.JSONDecodeError as error:
        raise BackendError(f"{url} sent an event that is not JSON: {data[:200]!r}") from error
    if not isinstance(event, dict):
        raise BackendError(f"{url} sent an event that is not a JSON object: {data[:200]!r}")
    return event


async def _check_status(response: httpx.Response, url: str) -> None:
    if response.status_code >= 400:
        await response.aread()
        raise _status_error(url, response.status_code, response.text)


def _status_error(url: str, status: int, text: str) -> BackendError:
    try:
        detail = _error_text(json.loads(text))
    except json.JSONDecodeError:
        detail = text
    return BackendError(f"{url} answered HTTP {status}: {detail[:500]}")


def _transport_error(url: str, error: httpx.HTTPError) -> BackendError:
    if isinstance(error, httpx.ConnectError):
        return BackendError(f"cannot connect to {url}: {error}; is the server running?")
    if isinstance(error, httpx.TimeoutException):
        return BackendError(f"{url} timed out ({type(error).__name__})")
    return BackendError(f"the connection to {url} failed mid-stream: "
                        f"{type(error).__name__}: {error}")
