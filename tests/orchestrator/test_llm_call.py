"""The one LLM-call path: usage adds up, is counted however a call ends, and structured
answers are parsed or refused with a message that says what to do."""

from __future__ import annotations

from contextlib import aclosing

import pytest

from taskloom.backends.base import GenerateRequest, Message
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BackendError
from taskloom.orchestrator.llm_call import (
    CallLedger,
    NodeOutputError,
    TokenUsage,
    complete_text,
    parse_structured,
    stream_call,
)
from taskloom.orchestrator.result import Preemption
from taskloom.orchestrator.scheduler.call_reports import CallReport


def _request(call_id: str = "c1") -> GenerateRequest:
    return GenerateRequest(call_id=call_id, messages=(Message("user", "one two three"),))


def test_token_usage_adds_field_by_field() -> None:
    total = TokenUsage(1, 2, 3, 1) + TokenUsage(10, 20, 30, 2)
    assert total == TokenUsage(11, 22, 33, 3)


@pytest.mark.anyio
async def test_a_completed_call_is_counted_once() -> None:
    backend = ScriptedBackend(respond=lambda r: "alpha beta gamma")
    ledger = CallLedger()
    text = await complete_text(backend.generate, _request(), ledger)
    assert text == "alpha beta gamma"
    assert ledger.call_ids == ["c1"]
    assert ledger.usage == TokenUsage(prompt_tokens=3, generated_tokens=3, llm_calls=1)


@pytest.mark.anyio
async def test_a_call_closed_part_way_counts_what_it_spent_and_is_aborted() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c d e f")
    ledger = CallLedger()
    async with aclosing(stream_call(backend.generate, _request(), ledger)) as stream:
        async for chunk in stream:
            if chunk.generated_tokens == 2:
                break
    assert ledger.usage.generated_tokens == 2
    assert backend.aborted == ["c1"]


@pytest.mark.anyio
async def test_a_failing_engine_still_leaves_the_spend_counted() -> None:
    backend = ScriptedBackend(respond=lambda r: "a b c d", fail_after_chunks=3)
    ledger = CallLedger()
    with pytest.raises(BackendError):
        await complete_text(backend.generate, _request(), ledger)
    assert ledger.usage == TokenUsage(prompt_tokens=3, generated_tokens=3, llm_calls=1)


def test_parse_structured_reads_json_that_fits_the_schema() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert parse_structured('{"n": 4}', schema) == {"n": 4}
    assert parse_structured("plain", None) == "plain"


def test_parse_structured_says_when_the_answer_was_cut_off() -> None:
    with pytest.raises(NodeOutputError, match="raise max_tokens"):
        parse_structured('{"n": ', {"type": "object"})


def test_parse_structured_names_the_schema_mismatch() -> None:
    with pytest.raises(NodeOutputError, match="does not match output_schema: 'n' is a required"):
        parse_structured("{}", {"type": "object", "required": ["n"]})


def test_a_calls_preemptions_are_kept_on_the_ledgers_clock() -> None:
    # The scheduler's clock reads 25 as the call ends; the ledger's reads 100 then.
    ledger = CallLedger(clock=lambda: 100.0)
    ledger.heard(CallReport(
        call_id="c1", queued_s=0.0, service_s=0.0, level=0, priority=0, preemptions=2,
        engine=None, engine_name=None, ended_at_s=25.0,
        preempted_at_s=(3.5, 20.0), resumed_at_s=(15.5,),  # it ended while preempted
    ))
    assert ledger.preempted == [Preemption(78.5, 90.5), Preemption(95.0, None)]
    ledger.heard(CallReport(call_id="c2", queued_s=0.0, service_s=0.0, level=0, priority=0,
                            preemptions=0, engine=0, engine_name="e", ended_at_s=30.0))
    assert len(ledger.preempted) == 2
