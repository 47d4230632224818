"""chat: ShareGPT conversations as chained LLM calls that carry the conversation."""

from __future__ import annotations

from typing import Any

from taskloom.backends.sim import approx_tokens
from taskloom.bench.workloads import WorkloadOptions, build_workload
from taskloom.bench.workloads.chat import chat_program
from taskloom.bench.workloads.data import ChatTurn, Conversation
from taskloom.orchestrator.compile import compile_program
from taskloom.orchestrator.inputs import resolve_inputs
from taskloom.program.models import LLMNode

CONVERSATION = Conversation(
    "demo",
    (
        ChatTurn("What is a prime number?", "A number with exactly two divisors. " * 3),
        ChatTurn("Is 7 prime?", "Yes, 7 is prime."),
        ChatTurn("And 9?", "No: 9 is 3 times 3."),
    ),
)


def test_chat_programs_compile_and_accept_their_inputs() -> None:
    workload = build_workload("chat", 8, seed=1)
    assert len(workload.programs) == 8
    for bench_program in workload.programs:
        graph = compile_program(bench_program.program, workload.tools)
        assert resolve_inputs(bench_program.program, bench_program.inputs)
        assert graph.stats.node_count == bench_program.llm_calls
        assert bench_program.kind == "chat"


def test_each_turn_carries_the_conversation_so_far() -> None:
    program = chat_program(CONVERSATION, WorkloadOptions()).program  # type: ignore[union-attr]
    third = program.nodes["turn_2"]
    assert isinstance(third, LLMNode) and third.messages is not None
    assert [m.role for m in third.messages] == ["user", "assistant"] * 2 + ["user"]
    assert [m.content for m in third.messages] == [
        "{{ inputs.user_0 }}", "{{ turn_0 }}", "{{ inputs.user_1 }}", "{{ turn_1 }}",
        "{{ inputs.user_2 }}",
    ]
    graph = compile_program(program)
    assert graph.dependencies("turn_2") == ("turn_0", "turn_1")


def test_answers_are_as_long_as_the_trace_replies() -> None:
    built = chat_program(CONVERSATION, WorkloadOptions())
    assert built is not None
    lengths = [built.program.nodes[f"turn_{i}"].max_tokens for i in range(3)]  # type: ignore[union-attr]
    assert lengths == [len(approx_tokens(turn.assistant)) for turn in CONVERSATION.turns]


def test_max_output_tokens_caps_every_answer() -> None:
    workload = build_workload("chat", 6, seed=2, options=WorkloadOptions(max_output_tokens=7))
    for bench_program in workload.programs:
        for node in bench_program.program.nodes.values():
            assert isinstance(node, LLMNode) and node.max_tokens is not None
            assert 1 <= node.max_tokens <= 7


def test_every_call_fits_the_context_limit(count_prompt_tokens: Any) -> None:
    options = WorkloadOptions(max_context_tokens=300)
    workload = build_workload("chat", 10, seed=4, options=options)
    for bench_program in workload.programs:
        program = bench_program.program
        outputs: dict[str, str] = {}
        for index in range(bench_program.llm_calls):
            node = program.nodes[f"turn_{index}"]
            assert isinstance(node, LLMNode) and node.max_tokens is not None
            prompt = count_prompt_tokens(program, bench_program.inputs, f"turn_{index}", outputs)
            assert prompt + node.max_tokens <= 300
            outputs[f"turn_{index}"] = "tok " * node.max_tokens


def test_a_conversation_whose_first_turn_cannot_fit_is_skipped() -> None:
    long_question = Conversation("long", (ChatTurn("word " * 500, "ok"),))
    assert chat_program(long_question, WorkloadOptions(max_context_tokens=100)) is None


def test_the_seed_decides_which_conversations() -> None:
    def sources(seed: int) -> list[str]:
        return [p.source_id for p in build_workload("chat", 10, seed=seed).programs]

    assert sources(3) == sources(3)
    assert sources(3) != sources(4)
