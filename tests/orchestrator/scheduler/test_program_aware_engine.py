"""ATLAS preemption on the real embedded engine: every answer stays exact.

The scheduler aborts a running call on vLLM and resumes it later with the text so far
(`resume_text`); with greedy decoding the consumer must get the same answer as a call
that was never preempted.

It runs on the session's `engine` fixture, which is float32 for this reason: in
bfloat16 vLLM's CPU build rounds the resumed call's prefill differently from the
step-by-step decoding it replaces, and SmolLM2 often has near-tied greedy choices; with
the prompts below, 5 of 8 answers of 48 tokens took another token after a preemption
(and as many when the same calls merely ran in one batch). In float32 all 8 stayed exact
over 19 and 37 preemptions (benchmarks/autellix_engine.py measures it on a mixed
workload).
"""

from __future__ import annotations

import math

import anyio
import pytest

from taskloom.backends.base import GenerateRequest, Message, SamplingParams, collect
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.queues import QueueConfig

pytestmark = [pytest.mark.anyio, pytest.mark.engine]

# A quantum far shorter than one call: the long call drops a level within a few decode
# steps, so a newly arrived call outranks it. No anti-starvation, so that the
# preemptions come from arrivals only.
QUICK_DEMOTION = QueueConfig(boundaries_s=(0.05,), beta=math.inf)
CHUNKS_BEFORE_ARRIVALS = 4


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _chat(program: str, question: str, max_tokens: int) -> GenerateRequest:
    return GenerateRequest(
        call_id=f"{program}/answer", program_id=program, thread_id="answer",
        messages=(Message("user", question),),
        sampling=SamplingParams(max_tokens=max_tokens, temperature=0.0),
    )


async def test_atlas_preempts_on_the_engine_and_every_answer_stays_exact(
    engine: VLLMBackend,
) -> None:
    long_call = _chat("essay", "Explain what a CPU does.", 48)
    short_calls = [_chat("fruits", "List five fruits.", 12),
                   _chat("planets", "Name four planets.", 12)]
    requests = [long_call, *short_calls]
    reference = {}
    for request in requests:  # one at a time: never preempted, never batched
        answer = await collect(engine.generate(request))
        reference[request.call_id] = (answer.text, answer.generated_tokens)

    scheduler = ProgramAwareScheduler([engine], "atlas", max_in_flight=1,
                                      queues=QUICK_DEMOTION)
    answers: dict[str, tuple[str, int]] = {}
    long_call_is_running = anyio.Event()

    async def run(request: GenerateRequest) -> None:
        parts: list[str] = []
        generated = 0
        async for chunk in scheduler.submit(request):
            parts.append(chunk.text)
            generated = chunk.generated_tokens
            if len(parts) == CHUNKS_BEFORE_ARRIVALS:
                long_call_is_running.set()
        answers[request.call_id] = ("".join(parts), generated)

    with anyio.fail_after(300):
        async with anyio.create_task_group() as group:
            group.start_soon(run, long_call)
            await long_call_is_running.wait()  # the short programs arrive while it runs
            for request in short_calls:
                group.start_soon(run, request)

    assert scheduler.stats().preemptions >= 1
    assert answers == reference
