"""chat: multi-turn ShareGPT conversations, one single-threaded program each.

Turn i is one LLM call whose messages are the conversation so far: the user's earlier
messages (from the trace) and the program's own earlier answers (`{{ turn_j }}`), then
the user's next message. So each call extends the previous call's prompt, and an engine
with prefix caching reuses it. Each answer is as long as the trace's reply.
"""

from __future__ import annotations

import random

from taskloom.backends.sim.tokens import count_tokens
from taskloom.bench.workloads.base import (
    BenchProgram,
    Workload,
    WorkloadError,
    WorkloadOptions,
    text_inputs,
)
from taskloom.bench.workloads.data import Conversation, sharegpt_conversations
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.program.models import ChatMessage, LLMNode, Program

# A chat template adds a role header per message and an assistant header at the end.
_HEADER_TOKENS = 1
# Conversations scanned per program asked for; many are cut to fit the context, and
# a wider pool makes the drawn sample less tied to the file's order.
_POOL_PER_PROGRAM = 4
_MIN_POOL = 512


def build_chat(count: int, seed: int, options: WorkloadOptions) -> Workload:
    return Workload("chat", tuple(chat_programs(count, seed, options)), workload_tools())


def chat_programs(count: int, seed: int, options: WorkloadOptions) -> list[BenchProgram]:
    """`count` chat programs drawn with `seed` (conversations repeat only if the data
    set has fewer that fit than `count`)."""
    if count <= 0:
        return []
    pool = sharegpt_conversations(max(_MIN_POOL, _POOL_PER_PROGRAM * count))
    random.Random(f"chat/{seed}").shuffle(pool)
    fitting = [p for p in (chat_program(c, options) for c in pool) if p is not None]
    if not fitting:
        raise WorkloadError("no ShareGPT conversation fits max_context_tokens")
    return [fitting[i % len(fitting)] for i in range(count)]


def chat_program(conversation: Conversation, options: WorkloadOptions) -> BenchProgram | None:
    """The program replaying `conversation`, cut before the first turn that would not
    fit the context; None if the first turn does not fit."""
    lengths = _turns_that_fit(conversation, options)
    if not lengths:
        return None
    inputs = {f"user_{i}": conversation.turns[i].user for i in range(len(lengths))}
    nodes = {f"turn_{i}": _turn_node(i, length) for i, length in enumerate(lengths)}
    program = Program(
        name="chat",
        description=f"ShareGPT conversation {conversation.id}",
        inputs=text_inputs(inputs),
        nodes=nodes,
        outputs={"reply": f"{{{{ turn_{len(lengths) - 1} }}}}"},
    )
    return BenchProgram(program, inputs, "chat", conversation.id, llm_calls=len(lengths))


def _turns_that_fit(conversation: Conversation, options: WorkloadOptions) -> list[int]:
    """The answer length of each turn that fits, in order."""
    lengths: list[int] = []
    context = _HEADER_TOKENS  # the assistant header that ends every prompt
    for turn in conversation.turns:
        answer = options.output_cap(count_tokens(turn.assistant))
        context += _HEADER_TOKENS + count_tokens(turn.user)
        if context + answer > options.max_context_tokens:
            break
        lengths.append(answer)
        context += answer + _HEADER_TOKENS
    return lengths


def _turn_node(index: int, answer_tokens: int) -> LLMNode:
    history: list[ChatMessage] = []
    for earlier in range(index):
        history.append(ChatMessage(role="user", content=f"{{{{ inputs.user_{earlier} }}}}"))
        history.append(ChatMessage(role="assistant", content=f"{{{{ turn_{earlier} }}}}"))
    history.append(ChatMessage(role="user", content=f"{{{{ inputs.user_{index} }}}}"))
    return LLMNode(messages=history, max_tokens=answer_tokens)
