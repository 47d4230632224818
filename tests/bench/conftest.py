"""Helpers shared by the benchmark tests."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from taskloom.backends.base import GenerateRequest, Message
from taskloom.backends.sim import FILLER_TEXT, request_tokens
from taskloom.program.models import LLMNode, Program
from taskloom.program.refs import render_template

PromptTokens = Callable[[Program, Mapping[str, Any], str, Mapping[str, Any]], int]


def simulated_answer(tokens: int) -> str:
    """What the simulator answers with `tokens` tokens."""
    return FILLER_TEXT * tokens


def prompt_tokens(
    program: Program, inputs: Mapping[str, Any], node_id: str, outputs: Mapping[str, Any]
) -> int:
    """Tokens (as the simulator counts them) of `node_id`'s prompt, given earlier outputs."""
    node = program.nodes[node_id]
    assert isinstance(node, LLMNode)
    context = {"inputs": dict(inputs), **outputs}
    messages: list[Message] = []
    if node.system is not None:
        messages.append(Message("system", render_template(node.system, context)))
    for message in node.messages or []:
        messages.append(Message(message.role, render_template(message.content, context)))
    return len(request_tokens(GenerateRequest(call_id="x", messages=tuple(messages))))


@pytest.fixture
def count_prompt_tokens() -> PromptTokens:
    return prompt_tokens
