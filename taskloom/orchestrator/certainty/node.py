"""An `llm` node with `aggregate`, `early_stop` or `probe`: from spec to runners.

- Vote (self-consistency): `aggregate: vote`, or any `early_stop`, or `probe` with
  `n` > 1. Output: {answer, votes, samples_used, certainty, stopped_early, stop_reason}.
- Probe alone (`probe` with `n` of 1): one probed generation. Output: {answer, text,
  stopped_early, probe_answers, generated_tokens, probe_tokens}.

A probed call is sent as plain text, its messages' contents joined by blank lines: a
probe must continue the model's own unfinished answer, and a chat template would close
that answer's turn before the probe's cue. So write a probed node's prompt as the start
of a completion ("Question: ...\nLet's think step by step.\nStep 1:").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from taskloom.backends.base import GenerateRequest
from taskloom.orchestrator.certainty.allocation import (
    FixedWidthAllocator,
    QueryDemand,
    allocator_of,
)
from taskloom.orchestrator.certainty.answers import AnswerExtractor, extractor_from_spec
from taskloom.orchestrator.certainty.probing import generate_with_probes
from taskloom.orchestrator.certainty.rules import NeverStop, first_check_of, rule_from_spec
from taskloom.orchestrator.certainty.self_consistency import Sample, vote
from taskloom.orchestrator.llm_call import CallLedger, Submit, complete_text
from taskloom.orchestrator.scheduler.base import Scheduler
from taskloom.program.models import LLMNode

RequestFactory = Callable[[int], GenerateRequest]
"""The request of sample `index` of a node, as the node runner builds it."""


def uses_certainty(node: LLMNode) -> bool:
    return node.aggregate is not None or node.early_stop is not None or node.probe is not None


def is_vote(node: LLMNode) -> bool:
    return node.aggregate == "vote" or node.early_stop is not None or node.n > 1


async def run_certainty_llm(
    node: LLMNode, request_for: RequestFactory, scheduler: Scheduler, usage: CallLedger
) -> dict[str, Any]:
    extract = extractor_from_spec(node.answer)
    if not is_vote(node):
        assert node.probe is not None
        request = as_plain_prompt(request_for(0))
        probed = await generate_with_probes(request, node.probe, extract, scheduler.submit, usage)
        return probed.as_output()
    return await _run_vote(node, request_for, scheduler, extract, usage)


async def _run_vote(
    node: LLMNode,
    request_for: RequestFactory,
    scheduler: Scheduler,
    extract: AnswerExtractor,
    usage: CallLedger,
) -> dict[str, Any]:
    rule = rule_from_spec(node.early_stop)
    # Without a rule every sample is needed, so they are one gang.
    gang = node.n if isinstance(rule, NeverStop) else min(node.n, first_check_of(rule))
    parallel = node.early_stop.parallel if node.early_stop is not None else None
    allocator = allocator_of(scheduler, FixedWidthAllocator(parallel))
    draw = _drawer(node, request_for, scheduler.submit, extract, usage)
    demand = QueryDemand(_query_id(request_for(0)), node.n, gang)
    async with allocator.admit(demand) as lease:
        outcome = await vote(draw, cap=node.n, rule=rule, lease=lease)
    return outcome.as_output()


def _drawer(
    node: LLMNode,
    request_for: RequestFactory,
    submit: Submit,
    extract: AnswerExtractor,
    usage: CallLedger,
) -> Callable[[int], Any]:
    async def draw(index: int) -> Sample:
        request = request_for(index)
        if node.probe is None:
            text = await complete_text(submit, request, usage)
            return Sample(index, text, extract(text))
        probed = await generate_with_probes(
            as_plain_prompt(request), node.probe, extract, submit, usage
        )
        return Sample(index, probed.text, probed.answer)

    return draw


def _query_id(first: GenerateRequest) -> str:
    return first.call_id.rsplit("/", 1)[0]


def as_plain_prompt(request: GenerateRequest) -> GenerateRequest:
    if request.messages is None:
        return request
    # Nothing is added after the last message: a completion-style prompt ("... Step 1:")
    # must end where its author ended it.
    text = "\n\n".join(message.content for message in request.messages)
    return replace(request, prompt=text, messages=None)


_VOTE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": ["string", "null"]},
        "votes": {"type": "object", "additionalProperties": {"type": "integer"}},
        "samples_used": {"type": "integer"},
        "certainty": {"type": "number"},
        "stopped_early": {"type": "boolean"},
        "stop_reason": {"type": "string", "enum": ["rule", "hopeless", "exhausted"]},
    },
}

_PROBE_OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "answer": {"type": ["string", "null"]},
        "text": {"type": "string"},
        "stopped_early": {"type": "boolean"},
        "probe_answers": {"type": "array", "items": {"type": ["string", "null"]}},
        "generated_tokens": {"type": "integer"},
        "probe_tokens": {"type": "integer"},
    },
}


def certainty_output_schema(node: LLMNode) -> dict[str, Any] | None:
    """The JSON schema of the node's output if one of these options shapes it, else None
    (so that the compiler can check references such as `{{ solve.answer }}`)."""
    if not uses_certainty(node):
        return None
    return _VOTE_OUTPUT_SCHEMA if is_vote(node) else _PROBE_OUTPUT_SCHEMA
