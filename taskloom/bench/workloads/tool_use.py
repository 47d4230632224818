"""tool-use: ReAct-style programs from the Berkeley Function Calling Leaderboard.

Each BFCL row becomes one program. The system prompt holds the row's real function docs
and the user messages are the row's real questions. Then, ReAct-style: an LLM call
writes function calls, those calls run as tool nodes, their results go back into the
conversation, and the next LLM call follows.

- `parallel` and `parallel_multiple` rows: one LLM call writes all the expected calls
  at once, they run in parallel, and a last LLM call answers.
- `multi_turn_*` rows: per user turn, one LLM call per expected call (each waits for
  the previous result, as a ReAct agent acting on an environment does), then an answer.

A call's answer is as long as the expected calls written as Python (BFCL's format).
Tool latencies and result sizes are not in the data; they are drawn per program from
log-normal distributions (see `_LATENCY` and `_RESULT`), with results about ten times
longer for `multi_turn_long_context`, whose environments are built to give long outputs.
"""

from __future__ import annotations

import itertools
import json
import random
from dataclasses import dataclass, field
from typing import Any

from taskloom.backends.sim.tokens import count_tokens
from taskloom.bench.workloads.base import (
    BenchProgram,
    Workload,
    WorkloadError,
    WorkloadOptions,
    text_inputs,
)
from taskloom.bench.workloads.data import bfcl_function_docs, bfcl_rows
from taskloom.bench.workloads.draws import LogNormal
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.program.models import ChatMessage, LLMNode, Program, ToolNode

PARALLEL_FILES = ("BFCL_v4_parallel.json", "BFCL_v4_parallel_multiple.json")
MULTI_TURN_FILES = (
    "BFCL_v4_multi_turn_base.json",
    "BFCL_v4_multi_turn_long_context.json",
    "BFCL_v4_multi_turn_miss_func.json",
    "BFCL_v4_multi_turn_miss_param.json",
)

_SYSTEM_PREAMBLE = (
    "You are an assistant that acts by calling functions. To act, reply with a list of "
    "calls in Python syntax, e.g. [func(a=1), other(b='x')]; results come back in the "
    "next message. When the task is done, answer the user in plain text. "
    "The functions you can call, as JSON:\n"
)
_HEADER_TOKENS = 1


# Assumptions, not data: API calls of a few hundred ms with a long tail, results of a
# few dozen tokens; final answers of 16-64 tokens.
_LATENCY = LogNormal(median=0.4, sigma=0.9, low=0.02, high=10.0)
_RESULT = LogNormal(median=40, sigma=0.8, low=4, high=400)
_LONG_CONTEXT_RESULT_SCALE = 10.0
_ANSWER_TOKENS = (16, 64)


def build_tool_use(count: int, seed: int, options: WorkloadOptions) -> Workload:
    return Workload("tool-use", tuple(tool_use_programs(count, seed, options)), workload_tools())


def tool_use_programs(count: int, seed: int, options: WorkloadOptions) -> list[BenchProgram]:
    if count <= 0:
        return []
    rows = [(name, row) for name in (*PARALLEL_FILES, *MULTI_TURN_FILES) for row in bfcl_rows(name)]
    random.Random(f"tool-use/{seed}").shuffle(rows)
    programs: list[BenchProgram] = []
    misses_in_a_row = 0
    # Rows repeat, with fresh draws, only when more programs are asked for than rows fit.
    for index in itertools.count():
        if len(programs) == count:
            break
        if misses_in_a_row == len(rows):
            raise WorkloadError("no BFCL row fits max_context_tokens")
        file_name, row = rows[index % len(rows)]
        rng = random.Random(f"tool-use/{seed}/{index}")
        built = tool_use_program(file_name, row, options, rng)
        misses_in_a_row = 0 if built is not None else misses_in_a_row + 1
        if built is not None:
            programs.append(built)
    return programs


def tool_use_program(
    file_name: str, row: dict[str, Any], options: WorkloadOptions, rng: random.Random
) -> BenchProgram | None:
    """The ReAct program for one BFCL row; None if its first call does not fit."""
    if file_name in PARALLEL_FILES:
        docs = list(row["function"])
        turns = [(row["question"][0], [[_python_call(c) for c in row["ground_truth"]]])]
    else:
        docs = _multi_turn_docs(row)
        turns = [
            (question, [[call] for call in calls])
            for question, calls in zip(row["question"], row["ground_truth"], strict=False)
        ]
    scale = _LONG_CONTEXT_RESULT_SCALE if "long_context" in file_name else 1.0
    builder = _ReactBuilder(_SYSTEM_PREAMBLE + json.dumps(docs), options, rng, scale)
    for question, steps in turns:
        if not builder.add_turn(_question_text(question), steps):
            break
    return builder.finish(row["id"])


def _multi_turn_docs(row: dict[str, Any]) -> list[dict[str, Any]]:
    excluded = set(row.get("excluded_function", ()))
    return [
        doc
        for class_name in row["involved_classes"]
        for doc in bfcl_function_docs(class_name)
        if doc["name"] not in excluded
    ]


def _question_text(messages: list[dict[str, Any]]) -> str:
    return "\n".join(str(m.get("content", "")) for m in messages).strip()


def _python_call(expected: dict[str, dict[str, list[Any]]]) -> str:
    """A BFCL expected call (`{name: {arg: [accepted values]}}`) as Python source."""
    ((name, arguments),) = expected.items()
    args = ", ".join(f"{k}={v[0]!r}" for k, v in arguments.items() if v)
    return f"{name}({args})"


@dataclass
class _ReactBuilder:
    """Grows one ReAct program call by call, keeping count of its context."""

    system: str
    options: WorkloadOptions
    rng: random.Random
    result_scale: float
    inputs: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, LLMNode | ToolNode] = field(default_factory=dict)
    history: list[ChatMessage] = field(default_factory=list)
    context: int = 0
    llm_calls: int = 0
    turns: int = 0
    acts: int = 0

    def __post_init__(self) -> None:
        self.inputs["functions"] = self.system
        self.context = 2 * _HEADER_TOKENS + count_tokens(self.system)

    def add_turn(self, question: str, steps: list[list[str]]) -> bool:
        """Add a user turn: its acting steps, then an answer. False once one does not fit."""
        turn, self.turns = self.turns, self.turns + 1
        if question:
            self._say_user(f"question_{turn}", question)
        for calls in steps:
            step, self.acts = f"act_{self.acts}", self.acts + 1
            if not self._call_llm(step, count_tokens(f"[{', '.join(calls)}]")):
                return False
            self._run_tools(step, calls)
        return self._call_llm(f"answer_{turn}", self.rng.randint(*_ANSWER_TOKENS))

    def finish(self, source_id: str) -> BenchProgram | None:
        if self.llm_calls == 0:
            return None
        program = Program(
            name="tool_use",
            description=f"BFCL {source_id}",
            inputs=text_inputs(self.inputs),
            nodes=dict(self.nodes),
        )
        return BenchProgram(program, dict(self.inputs), "tool-use", source_id, self.llm_calls)

    def _say_user(self, input_name: str, text: str) -> None:
        self.inputs[input_name] = text
        self.history.append(ChatMessage(role="user", content=f"{{{{ inputs.{input_name} }}}}"))
        self.context += _HEADER_TOKENS + count_tokens(text)

    def _call_llm(self, node_id: str, answer_tokens: int) -> bool:
        answer = self.options.output_cap(answer_tokens)
        if self.context + answer > self.options.max_context_tokens:
            return False
        self.nodes[node_id] = LLMNode(
            system="{{ inputs.functions }}", messages=list(self.history), max_tokens=answer
        )
        self.history.append(ChatMessage(role="assistant", content=f"{{{{ {node_id} }}}}"))
        self.context += answer + _HEADER_TOKENS
        self.llm_calls += 1
        return True

    def _run_tools(self, after: str, calls: list[str]) -> None:
        results: list[str] = []
        for index, call in enumerate(calls):
            node_id = f"{after}_call_{index}"
            function = call.split("(", 1)[0].strip() or "function"
            result_tokens = round(_RESULT.draw(self.rng, self.result_scale))
            self.nodes[node_id] = ToolNode(
                tool="simulated_call",
                after=[after],
                args={
                    "function": function,
                    "latency_s": round(_LATENCY.draw(self.rng), 4),
                    "result_tokens": result_tokens,
                },
            )
            results.append(f"{{{{ {node_id} }}}}")
            self.context += result_tokens + count_tokens(f"{function} returned:")
        self.history.append(ChatMessage(role="user", content="\n".join(results)))
        self.context += _HEADER_TOKENS

