"""tree-search: LATS-style (Language Agent Tree Search) programs, over a hundred calls each.

Each step of a program:

1. expands `branching` children of the current trajectory in parallel: one LLM node
   sampled `n = branching` times at temperature 1;
2. scores every child with an LLM call (a `map` over the children), as LATS's value
   function does;
3. keeps the best-scored child (the `lats_select` tool), which extends the trajectory.

After `depth` steps a last call answers. With the defaults (5 children, 10 to 14 steps)
a program makes 101 to 141 LLM calls, most of them in bursts of 5 parallel calls that
share the trajectory as a prompt prefix.

The tasks are real user requests (the first message of ShareGPT conversations); the
search itself is synthetic. Lengths are assumptions sized like LATS's ReAct steps: a
child (thought and action) of 48-160 tokens, an evaluation of 16-48, an answer of 32-128.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from taskloom.backends.sim.tokens import count_tokens
from taskloom.bench.workloads.base import (
    BenchProgram,
    Workload,
    WorkloadError,
    WorkloadOptions,
    text_inputs,
)
from taskloom.bench.workloads.data import sharegpt_conversations
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.program.models import ChatMessage, Defaults, LLMNode, MapNode, Program, ToolNode

SYSTEM_PROMPT = (
    "You solve tasks by searching over steps. At each step, write one thought about the "
    "task and the action it leads to. You will be shown the steps taken so far; propose "
    "the next one. When asked to evaluate a step, explain briefly how much it advances the "
    "task and end with a score from 1 to 10. When asked for the final answer, give it."
)
EXPAND_REQUEST = "Propose the next step."
SCORE_REQUEST = "Evaluate the step above. End with a score from 1 to 10."
ANSWER_REQUEST = "Give the final answer to the task."

DEFAULT_BRANCHING = 5
DEPTH_RANGE = (10, 14)
CHILD_TOKENS = (48, 160)
SCORE_TOKENS = (16, 48)
ANSWER_TOKENS = (32, 128)
MAX_TASK_TOKENS = 512
_HEADER_TOKENS = 1
_POOL = 2048


def build_tree_search(count: int, seed: int, options: WorkloadOptions) -> Workload:
    programs = tree_search_programs(count, seed, options)
    return Workload("tree-search", tuple(programs), workload_tools())


def tree_search_programs(
    count: int, seed: int, options: WorkloadOptions, branching: int = DEFAULT_BRANCHING
) -> list[BenchProgram]:
    if count <= 0:
        return []
    tasks = [c for c in sharegpt_conversations(_POOL) if _fits_task(c.turns[0].user)]
    if not tasks:
        raise WorkloadError("no ShareGPT request is short enough to be a tree-search task")
    random.Random(f"tree-search/{seed}").shuffle(tasks)
    programs: list[BenchProgram] = []
    for index in range(count):
        conversation = tasks[index % len(tasks)]
        rng = random.Random(f"tree-search/{seed}/{index}")
        program = tree_search_program(conversation.turns[0].user, conversation.id, options,
                                      rng, branching)
        if program is None:
            raise WorkloadError("max_context_tokens is too small for one tree-search step")
        programs.append(program)
    return programs


def _fits_task(text: str) -> bool:
    return 0 < count_tokens(text) <= MAX_TASK_TOKENS


def tree_search_program(
    task: str,
    source_id: str,
    options: WorkloadOptions,
    rng: random.Random,
    branching: int = DEFAULT_BRANCHING,
) -> BenchProgram | None:
    """One search over `task`; as deep as drawn, or as the context allows. None if not
    even one step fits."""
    builder = _SearchBuilder(options, branching, rng.randrange(1 << 30))
    builder.say_user("task", task)
    for _ in range(rng.randint(*DEPTH_RANGE)):
        lengths = (
            options.output_cap(rng.randint(*CHILD_TOKENS)),
            options.output_cap(rng.randint(*SCORE_TOKENS)),
        )
        if not builder.add_step(*lengths, answer_reserve=options.output_cap(ANSWER_TOKENS[1])):
            break
    if builder.depth == 0:
        return None
    builder.add_answer(options.output_cap(rng.randint(*ANSWER_TOKENS)))
    return builder.finish(task, source_id)


@dataclass
class _SearchBuilder:
    options: WorkloadOptions
    branching: int
    sampling_seed: int
    nodes: dict[str, LLMNode | MapNode | ToolNode] = field(default_factory=dict)
    history: list[ChatMessage] = field(default_factory=list)
    context: int = 0
    depth: int = 0

    def __post_init__(self) -> None:
        # Tokens of the history so far: the system message; each request adds the user
        # message it asks with and the assistant header the answer follows.
        self.context = _HEADER_TOKENS + count_tokens(SYSTEM_PROMPT)

    def say_user(self, input_name: str, text: str) -> None:
        self.history.append(ChatMessage(role="user", content=f"{{{{ inputs.{input_name} }}}}"))
        self.context += _HEADER_TOKENS + count_tokens(text)

    def add_step(self, child_tokens: int, score_tokens: int, answer_reserve: int) -> bool:
        """Expand, score and select; False (and nothing added) if it would not fit."""
        expand_prompt = self.context + _request_tokens(EXPAND_REQUEST)
        with_child = self.context + _HEADER_TOKENS + child_tokens
        history_after = with_child + _HEADER_TOKENS + count_tokens(EXPAND_REQUEST)
        needed = max(
            expand_prompt + child_tokens,
            with_child + _request_tokens(SCORE_REQUEST) + score_tokens,
            # The answer must still fit after this step.
            history_after + _request_tokens(ANSWER_REQUEST) + answer_reserve,
        )
        if needed > self.options.max_context_tokens:
            return False
        step = self.depth
        self.nodes[f"expand_{step}"] = LLMNode(
            system=SYSTEM_PROMPT,
            messages=[*self.history, _user(EXPAND_REQUEST)],
            max_tokens=child_tokens,
            n=self.branching,
            temperature=1.0,
        )
        self.nodes[f"score_{step}"] = MapNode(
            over=f"{{{{ expand_{step} }}}}",
            node=LLMNode(
                system=SYSTEM_PROMPT,
                messages=[*self.history, _assistant("{{ item }}"), _user(SCORE_REQUEST)],
                max_tokens=score_tokens,
            ),
        )
        self.nodes[f"select_{step}"] = ToolNode(
            tool="lats_select",
            args={"candidates": f"{{{{ expand_{step} }}}}", "scores": f"{{{{ score_{step} }}}}"},
        )
        # The trajectory grows by the chosen child, asked for as the expansion asked.
        self.history += [_user(EXPAND_REQUEST), _assistant(f"{{{{ select_{step} }}}}")]
        self.context = history_after
        self.depth += 1
        return True

    def add_answer(self, answer_tokens: int) -> None:
        self.nodes["answer"] = LLMNode(
            system=SYSTEM_PROMPT,
            messages=[*self.history, _user(ANSWER_REQUEST)],
            max_tokens=answer_tokens,
        )

    def finish(self, task: str, source_id: str) -> BenchProgram:
        inputs = {"task": task}
        program = Program(
            name="tree_search",
            description=f"LATS-style search over ShareGPT request {source_id}",
            inputs=text_inputs(inputs),
            defaults=Defaults(seed=self.sampling_seed),
            nodes=dict(self.nodes),
            outputs={"answer": "{{ answer }}"},
        )
        calls = self.depth * 2 * self.branching + 1
        return BenchProgram(program, inputs, "tree-search", source_id, calls)


def _request_tokens(text: str) -> int:
    return _HEADER_TOKENS + count_tokens(text) + _HEADER_TOKENS


def _user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def _assistant(text: str) -> ChatMessage:
    return ChatMessage(role="assistant", content=text)
