"""`llm` nodes with aggregate / early_stop / probe, run by the executor."""

from __future__ import annotations

from typing import Any

import pytest
from certainty_helpers import run_virtual, sample_index, scripted_samples

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import SpecErrors
from taskloom.orchestrator.certainty.allocation import CertaintyAllocator, CertaintyAwareScheduler
from taskloom.orchestrator.result import RunResult, RunStatus
from taskloom.orchestrator.scheduler import FifoScheduler, ProgramAwareScheduler
from taskloom.program.load import loads
from taskloom.runtime import Runtime

VOTE = """
name: vote
inputs:
  question: {type: string, default: "What is 3 + 4?"}
nodes:
  solve:
    kind: llm
    prompt: "{{ inputs.question }}"
    n: 8
    temperature: 0.8
    aggregate: vote
    answer: {kind: regex, pattern: "answer: (\\\\d+)"}
    early_stop: {rule: beta, confidence: 0.95}
  report:
    kind: llm
    prompt: "The answer is {{ solve.answer }} ({{ solve.samples_used }} samples)"
outputs:
  answer: "{{ solve.answer }}"
  report: "{{ report }}"
"""


def run(spec: str, backend: ScriptedBackend, scheduler: Any = None) -> RunResult:
    async def main() -> RunResult:
        return await Runtime(backend, scheduler=scheduler).run(loads(spec))

    return run_virtual(main)


def echo_or(samples: Any) -> Any:
    def respond(request: GenerateRequest) -> str:
        assert request.messages is not None
        if request.call_id.split("/")[1] == "report":
            return request.messages[-1].content
        return str(samples(request))

    return respond


def test_a_vote_node_stops_early_aborts_the_rest_and_feeds_its_answer_on() -> None:
    lengths = [1, 2, 3, 4, 30, 30, 30, 30]
    backend = ScriptedBackend(respond=echo_or(scripted_samples(["7"] * 8, lengths)),
                              per_chunk_s=0.01)
    result = run(VOTE, backend)
    assert result.status is RunStatus.SUCCEEDED, result.error
    solve = result.nodes["solve"]
    assert solve.output == {
        "answer": "7", "votes": {"7": 4}, "samples_used": 4, "certainty": 1.0,
        "stopped_early": True, "stop_reason": "rule",
    }
    assert solve.llm_calls == 8 and len(backend.aborted) == 4
    assert solve.generated_tokens < sum(lengths) + 2 * 8  # the long samples were cut
    assert result.outputs["report"] == "The answer is 7 (4 samples)"
    assert backend.in_flight == set()


def peak_tracking(backend: ScriptedBackend, respond: Any) -> tuple[Any, list[int]]:
    """`respond`, recording how many calls the engine holds as each one starts."""
    peaks: list[int] = []

    def tracked(request: GenerateRequest) -> str:
        peaks.append(len(backend.in_flight))
        return str(respond(request))

    return tracked, peaks


def test_parallel_limits_how_many_samples_reach_the_engine() -> None:
    spec = VOTE.replace("confidence: 0.95}", "confidence: 0.95, parallel: 2}")
    backend = ScriptedBackend(per_chunk_s=0.01)
    backend.respond, peaks = peak_tracking(
        backend, echo_or(scripted_samples(["7"] * 8, [3] * 8))
    )
    result = run(spec, backend)
    assert max(peaks[:-1]) == 2  # the last call is the report node
    # Two at a time, and a finished sample's slot is reused only after the vote has
    # judged it: the 4 samples that decide are the only ones that ran.
    assert result.nodes["solve"].llm_calls == 4 and backend.aborted == []


def test_a_vote_node_with_n_of_one() -> None:
    spec = VOTE.replace("n: 8", "n: 1")
    backend = ScriptedBackend(respond=echo_or(scripted_samples(["9"], [2])))
    result = run(spec, backend)
    output = result.nodes["solve"].output
    assert output["answer"] == "9" and output["samples_used"] == 1
    assert output["stopped_early"] is False and output["certainty"] == 0.0


def test_answers_that_fail_to_parse_give_no_answer_not_an_error() -> None:
    backend = ScriptedBackend(respond=echo_or(lambda r: "I do not know"))
    result = run(VOTE, backend)
    assert result.status is RunStatus.SUCCEEDED
    output = result.nodes["solve"].output
    assert output["answer"] is None and output["votes"] == {}
    assert output["samples_used"] == 8 and output["stop_reason"] == "exhausted"


def test_a_plain_vote_takes_every_sample() -> None:
    spec = VOTE.replace("    early_stop: {rule: beta, confidence: 0.95}\n", "")
    answers = ["7", "7", "8", "7", "8", "7", "7", "9"]
    backend = ScriptedBackend(respond=echo_or(scripted_samples(answers, [1] * 8)))
    output = run(spec, backend).nodes["solve"].output
    assert output["votes"] == {"7": 5, "8": 2, "9": 1} and output["samples_used"] == 8


def test_vote_nodes_use_the_allocator_of_a_certainty_aware_scheduler() -> None:
    answers = ["7", "8", "7", "8", "7", "7", "7", "7"]
    backend = ScriptedBackend(per_chunk_s=0.01)
    backend.respond, peaks = peak_tracking(
        backend, echo_or(scripted_samples(answers, [1, 2, 3, 4, 5, 6, 7, 8]))
    )
    pool = CertaintyAllocator(slots=4)
    scheduler = CertaintyAwareScheduler(FifoScheduler(backend), pool)
    result = run(VOTE, backend, scheduler)
    output = result.nodes["solve"].output
    assert max(peaks[:-1]) == 4  # the pool has 4 slots; alone, the node would start 8
    assert output["votes"] == {"7": 6, "8": 2} and output["samples_used"] == 8
    assert pool.used == 0


def test_the_allocator_composes_with_the_program_aware_scheduler() -> None:
    # The same early stop as above, now under the pool and a program-aware policy:
    # the pool bounds the samples, the rule stops the vote, and the stragglers are
    # aborted in the engine through the inner scheduler.
    lengths = [1, 2, 3, 4, 30, 30, 30, 30]
    backend = ScriptedBackend(per_chunk_s=0.01)
    backend.respond, peaks = peak_tracking(
        backend, echo_or(scripted_samples(["7"] * 8, lengths))
    )
    pool = CertaintyAllocator(slots=6)
    scheduler = CertaintyAwareScheduler(ProgramAwareScheduler([backend], "plas"), pool)
    result = run(VOTE, backend, scheduler)
    assert result.status is RunStatus.SUCCEEDED, result.error
    output = result.nodes["solve"].output
    assert output["answer"] == "7" and output["samples_used"] == 4
    assert output["stop_reason"] == "rule"
    assert max(peaks[:-1]) == 6  # the pool's 6 slots, not the node's 8
    # The short samples' slots went to the last two, which were aborted with the rest.
    assert sorted(call.rsplit("/s", 1)[1] for call in backend.aborted) == ["4", "5", "6", "7"]
    assert backend.in_flight == set() and pool.used == 0


PROBE = """
name: probe
nodes:
  think:
    kind: llm
    system: Think step by step.
    prompt: What is 6 * 7?
    max_tokens: 400
    answer: {kind: boxed}
    probe: {every: 10, agree: 3}
"""


def test_a_probed_node_is_sent_as_text_and_stops_when_probes_agree() -> None:
    def respond(request: GenerateRequest) -> str:
        assert request.prompt is not None and request.messages is None
        if "/probe" in request.call_id:
            return "42}"
        return " ".join(f"t{i}" for i in range(300))

    backend = ScriptedBackend(respond=respond, per_chunk_s=0.01)
    result = run(PROBE, backend)
    output = result.nodes["think"].output
    assert output["answer"] == "42" and output["stopped_early"] is True
    assert output["probe_answers"][:3] == ["42", "42", "42"]
    assert output["generated_tokens"] < 300 and output["probe_tokens"] >= 3
    main_call = next(r for r in backend.seen if "/probe" not in r.call_id)
    assert main_call.prompt == "Think step by step.\n\nWhat is 6 * 7?"
    assert main_call.call_id in backend.aborted


def test_references_into_a_vote_are_checked_before_the_run() -> None:
    bad = VOTE.replace("{{ solve.samples_used }}", "{{ solve.sample_count }}")
    with pytest.raises(SpecErrors, match="sample_count") as raised:
        run(bad, ScriptedBackend())
    assert "samples_used" in str(raised.value)


def test_sample_index_helper_reads_node_call_ids() -> None:
    request = GenerateRequest(call_id="run/solve/a1/s12", prompt="x")
    assert sample_index(request) == 12
