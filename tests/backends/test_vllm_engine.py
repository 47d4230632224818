"""VLLMBackend on the embedded SmolLM2-135M engine.

The model is too small to judge answers, so these tests check structure only: streaming,
token counts, valid JSON under a schema, seeds, priority, abort and concurrency.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any

import anyio
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
from taskloom.backends.vllm_engine import VLLMBackend, to_vllm_sampling_params
from taskloom.bench.calibrate import engine_limits
from taskloom.errors import BackendError

pytestmark = pytest.mark.anyio

PLAN_SCHEMA = {
    "type": "object",
    "properties": {
        "tool": {"type": "string", "enum": ["search", "calculator"]},
        "args": {"type": "array", "items": {"type": "integer"}, "maxItems": 3},
    },
    "required": ["tool", "args"],
    "additionalProperties": False,
}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _prompt(call_id: str, text: str, **sampling: Any) -> GenerateRequest:
    return GenerateRequest(call_id=call_id, prompt=text, sampling=SamplingParams(**sampling))


async def _drain(stream: AsyncIterator[Chunk]) -> list[Chunk]:
    return [chunk async for chunk in stream]


def _long_request(call_id: str) -> GenerateRequest:
    """Greedy counting goes on for hundreds of tokens, so the test can stop it midway."""
    return _prompt(call_id, "1, 2, 3, 4, 5, 6, 7, 8,", max_tokens=1500, temperature=0.0)


async def _wait_until_idle(engine: VLLMBackend) -> int:
    """The engine forgets an aborted request within a few event-loop turns."""
    with anyio.move_on_after(10):
        while engine.num_unfinished_requests():
            await anyio.sleep(0.05)
    return engine.num_unfinished_requests()


def test_sampling_params_map_onto_vllm() -> None:
    request = GenerateRequest(
        call_id="c",
        prompt="x",
        sampling=SamplingParams(max_tokens=7, temperature=0.5, top_p=0.9, seed=3,
                                stop=("\n",), logprobs=2),
        json_schema_text=GenerateRequest.schema_text(PLAN_SCHEMA),
    )
    params = to_vllm_sampling_params(request)
    assert (params.max_tokens, params.temperature, params.top_p, params.seed) == (7, 0.5, 0.9, 3)
    assert params.stop == ["\n"]
    assert params.logprobs == 2
    assert params.structured_outputs.json == PLAN_SCHEMA
    assert params.output_kind.name == "DELTA"


async def test_engine_is_a_backend(engine: VLLMBackend) -> None:
    assert isinstance(engine, Backend)
    assert engine.capacity() == 16


async def test_engine_says_how_many_tokens_its_kv_cache_holds(engine: VLLMBackend) -> None:
    limits = engine_limits(engine)  # read off vLLM's own config, as calibration does
    assert engine.kv_capacity_tokens() == limits.num_kv_blocks * limits.block_size
    tokens = kv_capacity_of(engine)
    assert tokens is not None and tokens >= 2048  # one whole context, at least


async def test_prompt_streams_deltas_with_cumulative_token_counts(engine: VLLMBackend) -> None:
    request = _prompt("stream-1", "The capital of France is", max_tokens=24, temperature=0.0)
    chunks = await _drain(engine.generate(request))
    assert len(chunks) >= 3
    assert chunks[-1].finished and chunks[-1].finish_reason in ("stop", "length")
    assert not any(chunk.finished for chunk in chunks[:-1])
    counts = [chunk.generated_tokens for chunk in chunks]
    assert counts == sorted(counts) and 1 <= counts[-1] <= 24
    assert all(chunk.prompt_tokens >= 5 for chunk in chunks)
    whole = await collect(engine.generate(_prompt("stream-2", request.prompt or "",
                                                  max_tokens=24, temperature=0.0)))
    assert whole.text == "".join(chunk.text for chunk in chunks)  # greedy is repeatable


async def test_repeated_prompt_reports_prefix_cache_hits(engine: VLLMBackend) -> None:
    shared = "Background: " + " ".join(f"fact {i} is true." for i in range(120))
    first = await collect(engine.generate(_prompt("cache-1", shared + " Q1?", max_tokens=2)))
    second = await collect(engine.generate(_prompt("cache-2", shared + " Q2?", max_tokens=2)))
    assert first.prompt_tokens > 300
    assert 0 < second.cached_prompt_tokens < second.prompt_tokens


async def test_chat_messages_use_the_chat_template(engine: VLLMBackend) -> None:
    messages = (Message("system", "Answer briefly."), Message("user", "Say hello."))
    chat = GenerateRequest(call_id="chat-1", messages=messages,
                           sampling=SamplingParams(max_tokens=16))
    raw = _prompt("chat-raw", "Answer briefly. Say hello.", max_tokens=16)
    chat_answer = await collect(engine.generate(chat))
    raw_answer = await collect(engine.generate(raw))
    assert chat_answer.text.strip()
    # The template wraps each message in <|im_start|>role ... <|im_end|> tokens.
    assert chat_answer.prompt_tokens > raw_answer.prompt_tokens + 6


@pytest.mark.parametrize("chat", [False, True])
async def test_resume_text_continues_a_preempted_answer(engine: VLLMBackend, chat: bool) -> None:
    question: dict[str, Any] = (
        {"messages": (Message("user", "List five fruits."),)} if chat
        else {"prompt": "Fruits: apple,"}
    )

    def request(call_id: str, max_tokens: int, resume_text: str = "") -> GenerateRequest:
        sampling = SamplingParams(max_tokens=max_tokens, temperature=0.0)
        return GenerateRequest(call_id=call_id, sampling=sampling, resume_text=resume_text,
                               **question)

    chunks = await _drain(engine.generate(request("whole", 24)))
    assert len(chunks) > 9
    head = "".join(chunk.text for chunk in chunks[:8])
    rest = await collect(engine.generate(request("resumed", 16, resume_text=head)))
    # The engine saw the original prompt followed by the head's tokens (re-tokenizing
    # text may merge a pair at the seam), and generated only the remaining budget.
    # The text itself need not match the first run: a bf16 prefill and step-by-step
    # decoding round differently, which can flip near-tied greedy choices.
    expected = chunks[0].prompt_tokens + chunks[7].generated_tokens
    assert expected - 1 <= rest.prompt_tokens <= expected
    assert rest.text and 1 <= rest.generated_tokens <= 16


async def test_json_schema_output_parses_and_validates(engine: VLLMBackend) -> None:
    request = GenerateRequest(
        call_id="json-1",
        messages=(Message("user", "Pick a tool and up to three numbers as JSON."),),
        sampling=SamplingParams(max_tokens=120, temperature=0.7, seed=1),
        json_schema_text=GenerateRequest.schema_text(PLAN_SCHEMA),
    )
    answer = await collect(engine.generate(request))
    assert answer.finish_reason == "stop"
    jsonschema.validate(json.loads(answer.text), PLAN_SCHEMA)


async def test_same_seed_same_text_at_positive_temperature(engine: VLLMBackend) -> None:
    def sampled(call_id: str, seed: int) -> GenerateRequest:
        return _prompt(call_id, "Once upon a time", max_tokens=32, temperature=1.0, seed=seed)

    first = await collect(engine.generate(sampled("seed-a", 7)))
    again = await collect(engine.generate(sampled("seed-b", 7)))
    others = [await collect(engine.generate(sampled(f"seed-{s}", s))) for s in (8, 9)]
    assert first.text == again.text
    assert any(other.text != first.text for other in others)


async def test_priority_is_accepted(engine: VLLMBackend) -> None:
    results: dict[int, str] = {}

    async def run(priority: int) -> None:
        request = GenerateRequest(call_id=f"prio-{priority}", prompt="Count: 1, 2,",
                                  sampling=SamplingParams(max_tokens=8), priority=priority)
        results[priority] = (await collect(engine.generate(request))).text

    async with anyio.create_task_group() as group:
        for priority in (-5, 0, 10):
            group.start_soon(run, priority)
    assert set(results) == {-5, 0, 10}
    assert all(results.values())


async def test_cancelled_stream_leaves_no_request_in_engine(engine: VLLMBackend) -> None:
    request = _long_request("cancel-1")
    received: list[Chunk] = []
    with anyio.CancelScope() as scope:
        async for chunk in engine.generate(request):
            received.append(chunk)
            if len(received) == 3:
                assert "cancel-1" in engine.in_flight_request_ids()
                scope.cancel()
    assert len(received) == 3
    assert await _wait_until_idle(engine) == 0
    assert "cancel-1" not in engine.in_flight_request_ids()


async def test_stopping_early_aborts_the_request(engine: VLLMBackend) -> None:
    request = _long_request("early-1")
    async with aclosing(engine.generate(request)) as stream:
        async for chunk in stream:
            assert not chunk.finished
            break
    assert await _wait_until_idle(engine) == 0


async def test_cancel_while_queued_behind_full_batch(engine: VLLMBackend) -> None:
    """Requests cancelled before their first token also leave the engine."""
    async def run(i: int) -> None:
        await collect(engine.generate(_long_request(f"queued-{i}")))

    with anyio.move_on_after(1.5):
        async with anyio.create_task_group() as group:
            for i in range(20):  # more than max_num_seqs, so some wait in the queue
                group.start_soon(run, i)
    assert await _wait_until_idle(engine) == 0


async def test_sixteen_concurrent_requests_complete(engine: VLLMBackend) -> None:
    answers: dict[int, int] = {}

    async def run(i: int) -> None:
        request = _prompt(f"conc-{i}", f"Question {i}: what is {i} plus {i}?",
                          max_tokens=12, temperature=0.5, seed=i)
        answers[i] = (await collect(engine.generate(request))).generated_tokens

    async with anyio.create_task_group() as group:
        for i in range(16):
            group.start_soon(run, i)
    assert sorted(answers) == list(range(16))
    assert all(1 <= tokens <= 12 for tokens in answers.values())
    assert engine.num_unfinished_requests() == 0


async def test_duplicate_call_ids_get_separate_engine_ids(engine: VLLMBackend) -> None:
    texts: list[str] = []

    async def run() -> None:
        texts.append((await collect(engine.generate(_prompt("dup", "Hi", max_tokens=6)))).text)

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        group.start_soon(run)
    assert len(texts) == 2 and texts[0] == texts[1]


async def test_prompt_longer_than_context_is_a_backend_error(engine: VLLMBackend) -> None:
    too_long = "word " * 5000
    with pytest.raises(BackendError, match="too-long"):
        await collect(engine.generate(_prompt("too-long", too_long, max_tokens=4)))
    assert engine.num_unfinished_requests() == 0
