"""The streaming self-consistency runner: early stop, abort, n of 1, unreadable answers."""

from __future__ import annotations

import anyio
import pytest
from certainty_helpers import run_virtual, scripted_samples

from taskloom.backends.base import GenerateRequest, SamplingParams
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.certainty.allocation import FixedWidthAllocator, QueryDemand
from taskloom.orchestrator.certainty.answers import last_number
from taskloom.orchestrator.certainty.rules import BetaRule, CertaindexRule, NeverStop, StoppingRule
from taskloom.orchestrator.certainty.self_consistency import Sample, VoteOutcome, vote
from taskloom.orchestrator.llm_call import CallLedger, complete_text


def request(index: int) -> GenerateRequest:
    return GenerateRequest(call_id=f"q/s{index}", prompt="what is 3 + 4?",
                           sampling=SamplingParams(max_tokens=100))


async def run_vote(
    backend: ScriptedBackend, n: int, rule: StoppingRule, width: int | None = None
) -> VoteOutcome:
    usage = CallLedger()

    async def draw(index: int) -> Sample:
        text = await complete_text(backend.generate, request(index), usage)
        return Sample(index, text, last_number(text))

    allocator = FixedWidthAllocator(width)
    async with allocator.admit(QueryDemand("q", n, 2)) as lease:
        return await vote(draw, cap=n, rule=rule, lease=lease)


def test_a_settled_vote_aborts_the_samples_still_running() -> None:
    # Samples 0-3 are short and agree; 4-7 think for longer and are still running.
    backend = ScriptedBackend(
        respond=scripted_samples(["7"] * 8, [2, 3, 4, 5, 40, 41, 42, 43]), per_chunk_s=0.01
    )

    async def main() -> VoteOutcome:
        return await run_vote(backend, 8, BetaRule(0.95))

    outcome = run_virtual(main)
    assert outcome.answer == "7" and outcome.tally.votes == {"7": 4}
    assert outcome.samples_used == 4 and outcome.stopped_early and outcome.stop_reason == "rule"
    assert sorted(backend.aborted) == ["q/s4", "q/s5", "q/s6", "q/s7"]
    assert backend.in_flight == set()


def test_without_a_rule_every_sample_finishes_and_the_majority_wins() -> None:
    answers = ["7", "8", "7", "9", "7", "8"]
    backend = ScriptedBackend(respond=scripted_samples(answers, [1] * 6), per_chunk_s=0.01)

    async def main() -> VoteOutcome:
        return await run_vote(backend, 6, NeverStop())

    outcome = run_virtual(main)
    assert outcome.tally.votes == {"7": 3, "8": 2, "9": 1}
    assert outcome.answer == "7" and not outcome.stopped_early
    assert outcome.stop_reason == "exhausted" and backend.aborted == []


def test_width_limits_samples_in_flight_and_a_narrow_vote_launches_fewer() -> None:
    backend = ScriptedBackend(respond=scripted_samples(["5"] * 16, [3] * 16), per_chunk_s=0.01)
    peak = 0

    async def watch() -> None:
        nonlocal peak
        while True:
            peak = max(peak, len(backend.in_flight))
            await anyio.sleep(0.001)

    async def main() -> VoteOutcome:
        async with anyio.create_task_group() as group:
            group.start_soon(watch)
            outcome = await run_vote(backend, 16, BetaRule(0.95), width=2)
            group.cancel_scope.cancel()
        return outcome

    outcome = run_virtual(main)
    assert peak == 2
    assert outcome.samples_used == 4
    # A finished sample's slot is reused only after the vote has judged it, so nothing
    # beyond the 4 deciding samples ever reached the engine.
    assert len(backend.seen) == 4 and backend.aborted == []


def test_a_slow_sample_still_running_when_the_vote_settles_is_aborted() -> None:
    # Width 3: samples 0-2 start; 0 and 1 finish fast, 3 and 4 replace them and finish
    # fast too; the slow sample 2 is still running when the 4th agreeing answer lands.
    backend = ScriptedBackend(
        respond=scripted_samples(["5"] * 8, [1, 1, 50, 1, 1, 1, 1, 1]), per_chunk_s=0.01
    )

    async def main() -> VoteOutcome:
        return await run_vote(backend, 8, BetaRule(0.95), width=3)

    outcome = run_virtual(main)
    assert outcome.samples_used == 4 and backend.in_flight == set()
    assert "q/s2" in backend.aborted


def test_n_of_one() -> None:
    backend = ScriptedBackend(respond=scripted_samples(["12"], [3]))

    async def main() -> VoteOutcome:
        return await run_vote(backend, 1, CertaindexRule(0.7, first_check=2))

    outcome = run_virtual(main)
    assert outcome.answer == "12" and outcome.samples_used == 1
    assert not outcome.stopped_early and outcome.certainty == 0.0
    assert outcome.as_output() == {
        "answer": "12", "votes": {"12": 1}, "samples_used": 1, "certainty": 0.0,
        "stopped_early": False, "stop_reason": "exhausted",
    }


def test_unreadable_samples_count_as_samples_but_not_as_votes() -> None:
    backend = ScriptedBackend(respond=lambda r: "I cannot say", per_chunk_s=0.01)

    async def main() -> VoteOutcome:
        return await run_vote(backend, 5, BetaRule(0.9))

    outcome = run_virtual(main)
    assert outcome.answer is None and outcome.tally.votes == {}
    assert outcome.samples_used == 5 and outcome.tally.unparsed == 5
    assert outcome.certainty == 0.0


def test_a_failing_sample_fails_the_vote_and_aborts_the_others() -> None:
    def respond(request: GenerateRequest) -> str:
        return "boom" if request.call_id.endswith("/s1") else " ".join(["w"] * 50)

    class Boom(Exception):
        pass

    backend = ScriptedBackend(respond=respond, per_chunk_s=0.01)

    async def main() -> None:
        async def draw(index: int) -> Sample:
            text = await complete_text(backend.generate, request(index), CallLedger())
            if text == "boom":
                raise Boom
            return Sample(index, text, None)

        async with FixedWidthAllocator().admit(QueryDemand("q", 4, 2)) as lease:
            await vote(draw, cap=4, rule=NeverStop(), lease=lease)

    with pytest.raises(BaseExceptionGroup) as raised:
        run_virtual(main)
    assert raised.group_contains(Boom)
    assert backend.in_flight == set() and len(backend.aborted) == 3


def test_zero_samples_is_refused() -> None:
    async def main() -> None:
        async with FixedWidthAllocator().admit(QueryDemand("q", 1, 1)) as lease:
            await vote(lambda i: None, cap=0, rule=NeverStop(), lease=lease)  # type: ignore[arg-type,return-value]

    with pytest.raises(ValueError, match="at least one"):
        run_virtual(main)
