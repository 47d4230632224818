"""On the real embedded engine: a settled vote aborts its other samples inside vLLM."""

from __future__ import annotations

import anyio
import pytest

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.certainty.allocation import FixedWidthAllocator, QueryDemand
from taskloom.orchestrator.certainty.rules import BetaRule
from taskloom.orchestrator.certainty.self_consistency import Sample, VoteOutcome, vote
from taskloom.orchestrator.llm_call import CallLedger, complete_text

pytestmark = pytest.mark.engine

LONG = 400


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_settled_vote_aborts_its_running_samples_in_vllm(engine: VLLMBackend) -> None:
    # Greedy decoding: samples 0-3 write the same 4 tokens and agree, which settles
    # the Beta rule; samples 4-7 were asked for 400 tokens and are still decoding.
    ledger = CallLedger()

    def request(index: int) -> GenerateRequest:
        short = index < 4
        return GenerateRequest(
            call_id=f"certainty-abort/s{index}",
            prompt="Question: Tom has 15 apples and buys 8 more. How many does he have?\n"
            "Let's think step by step, checking each step twice.\nStep 1:",
            sampling=SamplingParams(max_tokens=4 if short else LONG, temperature=0.0),
        )

    async def draw(index: int) -> Sample:
        text = await complete_text(engine.generate, request(index), ledger)
        return Sample(index, text, text.strip().lower() or None)

    async with FixedWidthAllocator().admit(QueryDemand("certainty-abort", 8, 4)) as lease:
        outcome: VoteOutcome = await vote(draw, cap=8, rule=BetaRule(0.95), lease=lease)

    assert outcome.stopped_early and outcome.samples_used == 4
    assert ledger.usage.llm_calls == 8
    # The long samples were cut: far fewer than 4 x 400 tokens were generated.
    assert ledger.usage.generated_tokens < 4 * 4 + 4 * LONG // 2
    with anyio.fail_after(10):
        while engine.num_unfinished_requests():
            await anyio.sleep(0.05)
    assert not any(rid.startswith("certainty-abort") for rid in engine.in_flight_request_ids())
