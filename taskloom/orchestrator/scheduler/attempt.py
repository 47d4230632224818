"""One attempt of a call on one engine, and how a later attempt resumes it.

A running call's attempt can end three ways besides finishing: the scheduler aborts it
(preemption, cancellation: it cancels `call.attempt_scope`), the engine fails it, or the
call is moved. The text the call has produced stays in `call.text_parts`; the next attempt
is submitted with that text as `resume_text` and `max_tokens` reduced, so the engine's
prefix cache serves most of the re-prefill, and the consumer's stream never sees the
seam: every chunk it was given stays, no text is repeated, and token counts are the whole
call's.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import suppress
from dataclasses import replace
from typing import Protocol

import anyio

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.errors import BackendError
from taskloom.orchestrator.scheduler.balancer import EngineTally
from taskloom.orchestrator.scheduler.records import CallState, EngineSlots, ScheduledCall


class AttemptOwner(Protocol):
    """The scheduler that started an attempt, told what happens to it."""

    def chunk_received(self, call: ScheduledCall, epoch: int, chunk: Chunk) -> None:
        """A chunk was recorded (`chunk` has the whole call's counts); it is not yet
        handed to the consumer."""

    def attempt_failed(
        self, call: ScheduledCall, engine: EngineSlots, epoch: int, error: Exception
    ) -> None:
        """The engine failed the attempt; raise to end the consumer's stream."""


def resume_request(call: ScheduledCall, priority: int) -> GenerateRequest:
    """The call's request, continued after the text it has produced so far."""
    request = call.request
    resume = "".join(call.text_parts)
    budget = request.sampling.max_tokens - call.generated_tokens
    return replace(
        request,
        resume_text=request.resume_text + resume,
        sampling=replace(request.sampling, max_tokens=max(budget, 1)),
        priority=priority,
    )


async def run_attempt(
    call: ScheduledCall, engine: EngineSlots, priority: int, owner: AttemptOwner
) -> AsyncGenerator[Chunk, None]:
    """Stream `call` on `engine` until it finishes, fails, or is aborted or moved."""
    epoch = call.epoch
    generated_before = call.generated_tokens
    last: Chunk | None = None
    stream = engine.backend.generate(resume_request(call, priority))
    try:
        while call.state is CallState.RUNNING and call.epoch == epoch:
            # The scope covers only the wait for the next chunk, never a yield, so a
            # preemption (which cancels it) cannot land in the consumer's code.
            failure: Exception | None = None
            with anyio.CancelScope() as scope:
                call.attempt_scope = scope
                try:
                    chunk: Chunk | None = await anext(stream)
                except StopAsyncIteration:
                    chunk = None
                except Exception as error:
                    failure = error
                finally:
                    call.attempt_scope = None
            if scope.cancelled_caught:
                break  # preempted or cancelled; the loop condition says which
            if failure is not None:
                owner.attempt_failed(call, engine, epoch, failure)
                return
            if chunk is None:  # the stream ended without saying so: it is finished
                chunk = _closing_chunk(last)
            last = chunk
            whole = _record_chunk(call, epoch, chunk, generated_before)
            owner.chunk_received(call, epoch, whole)
            yield whole
            if chunk.finished:
                await _drain(stream)
                return
    finally:
        _tally_prompt(engine.tally, last)
        await stream.aclose()


def stop_attempt(call: ScheduledCall, now: float) -> None:
    """Bank the attempt's service and abort its stream if it is waiting for a chunk
    (otherwise it stops at its next check). The caller frees the engine's slot."""
    call.service_s = call.service_at(now)
    call.attempt_started_s = None
    call.engine = None
    if call.attempt_scope is not None:
        call.attempt_scope.cancel()


def _record_chunk(
    call: ScheduledCall, epoch: int, chunk: Chunk, generated_before: int
) -> Chunk:
    """Keep the chunk's text for a resume; give the consumer token counts for the whole
    call, not the attempt."""
    call.text_parts.append(chunk.text)
    if call.epoch == epoch:
        call.attempt_chunks += 1
    call.generated_tokens = generated_before + chunk.generated_tokens
    if call.prompt_tokens is None:
        call.prompt_tokens = chunk.prompt_tokens
        call.cached_prompt_tokens = chunk.cached_prompt_tokens
    return Chunk(
        text=chunk.text,
        prompt_tokens=call.prompt_tokens,
        generated_tokens=call.generated_tokens,
        cached_prompt_tokens=call.cached_prompt_tokens,
        finished=chunk.finished,
        finish_reason=chunk.finish_reason,
        queued_s=call.waiting_s,
    )


def _closing_chunk(last: Chunk | None) -> Chunk:
    if last is None:
        return Chunk(text="", finished=True, finish_reason="stop")
    return replace(last, text="", finished=True, finish_reason=last.finish_reason or "stop")


async def _drain(stream: AsyncGenerator[Chunk, None]) -> None:
    """Let a finished stream end by itself, so the engine sees a completed request, not
    an abort. Anything after the finished chunk is ignored."""
    with suppress(StopAsyncIteration, BackendError):
        await anext(stream)


def _tally_prompt(tally: EngineTally, last: Chunk | None) -> None:
    if last is not None:
        tally.prompt_tokens += last.prompt_tokens
        tally.cached_prompt_tokens += last.cached_prompt_tokens
