"""The `llm` kind: rendered messages in order, one request per sample with distinct
seeds, structured outputs parsed, call ids that name the node and attempt."""

from __future__ import annotations

from typing import Any

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.kinds import NodeEnvironment, node_kinds
from taskloom.orchestrator.llm_call import CallLedger, NodeOutputError
from taskloom.orchestrator.scheduler import FifoScheduler
from taskloom.program.models import ChatMessage, Defaults, LLMNode
from taskloom.tools.registry import ToolRegistry


def _env(backend: ScriptedBackend, defaults: Defaults | None = None) -> NodeEnvironment:
    return NodeEnvironment(
        run_id="r1",
        node_id="ask",
        scheduler=FifoScheduler(backend),
        tools=ToolRegistry(),
        defaults=defaults or Defaults(),
        kinds=node_kinds,
        attempt=2,
    )


async def _run(node: LLMNode, backend: ScriptedBackend, **env: Any) -> tuple[Any, CallLedger]:
    ledger = CallLedger()
    output = await node_kinds.get("llm").run(node, {"x": "X"}, _env(backend, **env), ledger)
    return output, ledger


@pytest.mark.anyio
async def test_messages_render_system_then_chat_then_prompt() -> None:
    backend = ScriptedBackend()
    node = LLMNode(
        system="be {{ x }}",
        messages=[ChatMessage(role="assistant", content="hi {{ x }}")],
        prompt="go {{ x }}",
    )
    await _run(node, backend)
    (request,) = backend.seen
    assert request.messages is not None
    assert [(m.role, m.content) for m in request.messages] == [
        ("system", "be X"), ("assistant", "hi X"), ("user", "go X"),
    ]


@pytest.mark.anyio
async def test_n_samples_are_separate_calls_with_distinct_seeds() -> None:
    backend = ScriptedBackend(respond=lambda r: f"seed {r.sampling.seed}")
    node = LLMNode(prompt="p", n=3, seed=7, max_tokens=5)
    output, ledger = await _run(node, backend)
    assert output == ["seed 7", "seed 8", "seed 9"]
    assert sorted(r.call_id for r in backend.seen) == [
        "r1/ask/a2/s0", "r1/ask/a2/s1", "r1/ask/a2/s2",
    ]
    assert {r.thread_id for r in backend.seen} == {"ask/s0", "ask/s1", "ask/s2"}
    assert all(r.sampling.max_tokens == 5 for r in backend.seen)
    assert ledger.usage.llm_calls == 3 and sorted(ledger.call_ids) == sorted(
        r.call_id for r in backend.seen
    )


@pytest.mark.anyio
async def test_defaults_fill_what_the_node_leaves_out() -> None:
    backend = ScriptedBackend()
    await _run(LLMNode(prompt="p"), backend, defaults=Defaults(max_tokens=9, temperature=0.5))
    (request,) = backend.seen
    assert (request.sampling.max_tokens, request.sampling.temperature) == (9, 0.5)


@pytest.mark.anyio
async def test_an_output_schema_is_sent_to_the_engine_and_parsed() -> None:
    schema = {"type": "object", "properties": {"v": {"type": "string"}}, "required": ["v"]}
    backend = ScriptedBackend(respond=lambda r: '{"v": "ok"}')
    output, _ = await _run(LLMNode(prompt="p", output_schema=schema), backend)
    assert output == {"v": "ok"}
    assert backend.seen[0].json_schema == schema


@pytest.mark.anyio
async def test_an_answer_that_misses_the_schema_fails_the_attempt() -> None:
    backend = ScriptedBackend(respond=lambda r: "not json")
    with pytest.raises(NodeOutputError, match="not valid JSON"):
        await _run(LLMNode(prompt="p", output_schema={"type": "object"}), backend)
