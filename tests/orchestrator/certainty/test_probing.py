"""Dynasor-CoT probing: stop only when the last k probe answers agree."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from certainty_helpers import run_virtual

from taskloom.backends.base import GenerateRequest, Message, SamplingParams
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.certainty.answers import extractor_from_spec
from taskloom.orchestrator.certainty.probing import (
    ProbedGeneration,
    ProbeResult,
    generate_with_probes,
    hedges,
    probe_request,
    probes_agree,
)
from taskloom.orchestrator.llm_call import CallLedger
from taskloom.program.models import AnswerSpec, ProbeSpec

SPEC = ProbeSpec(every=10, agree=3, max_tokens=6)
BOXED = extractor_from_spec(AnswerSpec(kind="boxed"))
MAIN = GenerateRequest(call_id="main", prompt="Question: 6 * 7?\n",
                       sampling=SamplingParams(max_tokens=500))


def results(*answers: str | None) -> list[ProbeResult]:
    return [ProbeResult(10 * i, "", a, a is None) for i, a in enumerate(answers)]


def test_probes_agree_only_when_the_whole_window_agrees() -> None:
    assert probes_agree(results("5", "42", "42", "42"), 3) == "42"
    assert probes_agree(results("42", "42"), 3) is None  # too few yet
    assert probes_agree(results("42", "41", "42"), 3) is None
    # The public Dynasor check returns True on this path too (its issue 25): an
    # unreadable or hedging probe in the window must block the stop.
    assert probes_agree(results("42", None, "42"), 3) is None
    assert probes_agree(results(None, None, None), 3) is None


def test_hedging_is_a_whole_word_in_any_case() -> None:
    words = ["wait", "but", "not sure"]
    assert hedges("42} Wait, let me redo", words)
    assert hedges("I am NOT SURE", words)
    assert not hedges("butter costs 42}", words)


def test_the_probe_continues_the_prompt_and_the_text_so_far() -> None:
    probe = probe_request(MAIN, "6 * 7 is", SPEC, 2)
    assert probe.prompt == "Question: 6 * 7?\n6 * 7 is" + SPEC.cue
    assert probe.call_id == "main/probe2"
    assert probe.sampling.max_tokens == 6 and probe.sampling.stop == ("\n",)
    chat = GenerateRequest(call_id="c", messages=(Message("user", "hi"),))
    with pytest.raises(ValueError, match="raw prompt"):
        probe_request(chat, "", SPEC, 0)


def thinker(
    probe_answer: Callable[[int], str], words: int = 200
) -> Callable[[GenerateRequest], str]:
    """Main call: `words` words of reasoning. A probe answers `probe_answer(position)`,
    the position being how many words of reasoning its prompt holds."""

    def respond(request: GenerateRequest) -> str:
        assert request.prompt is not None
        if request.call_id == "main":
            return " ".join(f"t{i}" for i in range(words))
        position = len(re.findall(r"\bt\d+\b", request.prompt))
        return probe_answer(position)

    return respond


def run_probed(backend: ScriptedBackend) -> ProbedGeneration:
    async def main() -> ProbedGeneration:
        return await generate_with_probes(MAIN, SPEC, BOXED, backend.generate, CallLedger())

    return run_virtual(main)


def test_agreeing_probes_stop_the_generation_and_abort_it_in_the_engine() -> None:
    # The answer changes once (41 -> 42 at 30 words), then stays.
    backend = ScriptedBackend(
        respond=thinker(lambda pos: "41}" if pos < 30 else "42}"), per_chunk_s=0.01
    )
    result = run_probed(backend)
    assert result.stopped_early and result.answer == "42"
    assert [p.answer for p in result.probes][:5] == ["41", "41", "42", "42", "42"]
    assert 50 <= result.generated_tokens < 60  # stopped soon after the 5th probe
    assert "main" in backend.aborted and backend.in_flight == set()
    assert result.probe_tokens == len(result.probes)  # one word each


def test_hedging_probes_never_stop_it() -> None:
    backend = ScriptedBackend(respond=thinker(lambda pos: "42} wait", words=60),
                              per_chunk_s=0.01)
    result = run_probed(backend)
    assert not result.stopped_early and result.generated_tokens == 60
    assert all(p.hedged and p.answer is None for p in result.probes)
    assert "main" not in backend.aborted


def test_disagreeing_or_unreadable_probes_never_stop_it() -> None:
    flip = thinker(lambda pos: f"{pos % 20}}}", words=80)  # 10, 0, 10, 0, ...
    cut_off = thinker(lambda pos: "42", words=80)  # the box never closes
    for respond in (flip, cut_off):
        backend = ScriptedBackend(respond=respond, per_chunk_s=0.01)
        result = run_probed(backend)
        assert not result.stopped_early and result.generated_tokens == 80
        assert len(result.probes) >= 6


def test_without_agreement_the_answer_comes_from_the_finished_text() -> None:
    def respond(request: GenerateRequest) -> str:
        if request.call_id == "main":
            return "so the result is \\boxed{42}"
        return "hmm}"

    backend = ScriptedBackend(respond=respond, per_chunk_s=0.01)
    result = run_probed(backend)
    assert result.answer == "42" and not result.stopped_early and result.probes == ()


def test_a_generation_that_ends_without_an_answer_gets_one_last_probe() -> None:
    backend = ScriptedBackend(respond=thinker(lambda pos: f"{pos % 20}}}", words=80),
                              per_chunk_s=0.01)
    result = run_probed(backend)
    assert not result.stopped_early
    assert result.probes[-1].position == 80 and result.answer == "0"
