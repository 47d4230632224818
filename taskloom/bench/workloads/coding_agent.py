"""coding-agent: SWE-bench-style sessions of tens of turns whose context grows to ~128K.

A session is one program. It starts from a system prompt that every session shares and
a per-session issue text. Turn i is one LLM call whose messages are the whole session so
far (the issue, every earlier reply and every earlier tool output), so each call's prompt
extends the previous one and an engine with prefix caching reuses all of it; then a tool
node (a file read, an edit, a search or a test run) whose output joins the context. The
session is cut before the turn whose prompt plus reply would pass
`WorkloadOptions.agent_context_tokens` (131,072 by default, Llama 3.1 8B's context: the
default simulated engine models Llama 3 8B, whose 3.1 version has the same layers and KV
heads, so the same step cost and KV bytes per token).

Data. No data set of agent trajectories ships on PyPI that we know of: the `swebench`
package (5.0.2) holds the harness only and fetches its tasks from the Hugging Face hub at
run time, and no trajectory package was found among the PyPI names we have. So every
parameter below is an assumption, drawn per session with the seed, sized by these
published figures:

- vLLM's AgentX figures (quoted in the design notes): a median of 43 turns and 142K
  input tokens per session, with a prefix-hit rate above 96%.
- taskloom issue 16: SWE-bench-style coding agents run tens of turns, contexts grow to
  30-100K tokens, with seconds of tool time between turns.
- SWE-bench (Jimenez et al., ICLR 2024, table 1): issue texts average 195 words, with a
  long tail (the longest 4,477).
- SWE-agent (Yang et al., NeurIPS 2024): its agent-computer interface shows a file 100
  lines at a time and keeps search results short; most actions open, scroll, search and
  edit files, and the agent runs reproduction scripts and tests between edits.

Assumptions (`_TURNS`, `_REPLY`, `_ISSUE`, `TOOL_KINDS`):

- turns per session: log-normal, median 43, sigma 0.45, truncated to 10-80 (redrawn,
  not clipped); cut earlier if the context fills;
- a reply (thought and action): log-normal, median 120 tokens, sigma 0.7, 16-1,024;
- the issue text: log-normal, median 250 tokens, sigma 0.8, 30-6,000; the shared system
  prompt (instructions and tool docs): 2,000 tokens;
- one tool per turn, of four kinds (share; latency in seconds; output in tokens, each a
  clipped log-normal given as median, sigma, low-high):

  | kind       | share | latency s               | output tokens             |
  |------------|-------|-------------------------|---------------------------|
  | read_file  | 35%   | 0.5, 0.5, 0.1-5         | 1,200, 0.5, 100-6,000     |
  | edit_file  | 25%   | 1.0, 0.5, 0.2-10        | 400, 0.6, 50-3,000        |
  | search     | 20%   | 1.5, 0.7, 0.2-20        | 500, 0.9, 20-6,000        |
  | run_tests  | 20%   | 8.0, 0.8, 1-120         | 800, 1.0, 50-8,000        |

  About 3 s of tool time and 1,150 tokens of context growth per turn on average. Over
  300 sessions of seed 0, the final context is 28K / 50K / 80K tokens at the 10th /
  50th / 90th percentile and 101K at most, so the 128K limit cuts only the rare tail
  (it matters for smaller `agent_context_tokens`).
"""

from __future__ import annotations

import functools
import random
import string
from dataclasses import dataclass, field

from taskloom.backends.sim.tokens import count_tokens
from taskloom.bench.workloads.base import (
    BenchProgram,
    Workload,
    WorkloadError,
    WorkloadOptions,
    text_inputs,
)
from taskloom.bench.workloads.draws import LogNormal
from taskloom.bench.workloads.sim_tools import workload_tools
from taskloom.program.models import ChatMessage, LLMNode, Program, ToolNode

KIND = "coding-agent"
MIN_TURNS = 10
MAX_TURNS = 80
SYSTEM_PROMPT_TOKENS = 2000

_TURNS = LogNormal(median=43, sigma=0.45, low=MIN_TURNS, high=MAX_TURNS)
_REPLY = LogNormal(median=120, sigma=0.7, low=16, high=1024)
_ISSUE = LogNormal(median=250, sigma=0.8, low=30, high=6000)
# A chat template adds a role header per message and an assistant header at the end.
_HEADER_TOKENS = 1


@dataclass(frozen=True)
class ToolKind:
    """One kind of tool call a coding agent makes: how often, how long, how much output."""

    name: str
    share: float
    latency_s: LogNormal
    output_tokens: LogNormal


TOOL_KINDS: tuple[ToolKind, ...] = (
    ToolKind("read_file", 0.35, LogNormal(0.5, 0.5, 0.1, 5.0), LogNormal(1200, 0.5, 100, 6000)),
    ToolKind("edit_file", 0.25, LogNormal(1.0, 0.5, 0.2, 10.0), LogNormal(400, 0.6, 50, 3000)),
    ToolKind("search", 0.20, LogNormal(1.5, 0.7, 0.2, 20.0), LogNormal(500, 0.9, 20, 6000)),
    ToolKind("run_tests", 0.20, LogNormal(8.0, 0.8, 1.0, 120.0), LogNormal(800, 1.0, 50, 8000)),
)


def build_coding_agent(count: int, seed: int, options: WorkloadOptions) -> Workload:
    return Workload(KIND, tuple(coding_agent_programs(count, seed, options)), workload_tools())


def coding_agent_programs(count: int, seed: int, options: WorkloadOptions) -> list[BenchProgram]:
    """`count` sessions drawn with `seed`; session i depends only on (seed, i)."""
    programs: list[BenchProgram] = []
    for index in range(max(0, count)):
        rng = random.Random(f"{KIND}/{seed}/{index}")
        built = coding_agent_program(f"session-{seed}-{index}", options, rng)
        if built is None:
            raise WorkloadError(
                f"a coding-agent session's first turn does not fit agent_context_tokens="
                f"{options.agent_context_tokens}"
            )
        programs.append(built)
    return programs


def coding_agent_program(
    source_id: str, options: WorkloadOptions, rng: random.Random
) -> BenchProgram | None:
    """One session drawn with `rng`; None if not even its first turn fits the context."""
    turns = round(_TURNS.draw_within(rng))
    issue = _words(rng, round(_ISSUE.draw(rng)))
    builder = _SessionBuilder(options, issue)
    for _ in range(turns):
        if not builder.add_turn(rng):
            break
    return builder.finish(source_id)


@functools.cache
def system_prompt() -> str:
    """The instructions and tool docs every session starts with (the same text for all,
    as one agent's sessions share it)."""
    return _words(random.Random(f"{KIND}/system"), SYSTEM_PROMPT_TOKENS)


def _words(rng: random.Random, tokens: int) -> str:
    # Four-letter words: one token each for the simulator's tokenizer.
    letters = string.ascii_lowercase
    return " ".join("".join(rng.choices(letters, k=4)) for _ in range(tokens))


def _tool_kind(rng: random.Random) -> ToolKind:
    return rng.choices(TOOL_KINDS, weights=[kind.share for kind in TOOL_KINDS])[0]


@dataclass
class _SessionBuilder:
    """Grows one session turn by turn, counting its context as the simulator does."""

    options: WorkloadOptions
    issue: str
    nodes: dict[str, LLMNode | ToolNode] = field(default_factory=dict)
    history: list[ChatMessage] = field(default_factory=list)
    context: int = 0
    turns: int = 0

    def __post_init__(self) -> None:
        # The system header, the issue's user header and the closing assistant header.
        self.context = 3 * _HEADER_TOKENS + count_tokens(system_prompt()) + count_tokens(
            self.issue
        )
        self.history.append(ChatMessage(role="user", content="{{ inputs.issue }}"))

    def add_turn(self, rng: random.Random) -> bool:
        """Add a call and its tool; False (and nothing added) once the call would not fit."""
        reply = self.options.output_cap(round(_REPLY.draw(rng)))
        kind = _tool_kind(rng)
        latency_s = round(kind.latency_s.draw(rng), 4)
        output_tokens = round(kind.output_tokens.draw(rng))
        if self.context + reply > self.options.agent_context_tokens:
            return False
        step, call = f"step_{self.turns}", f"tool_{self.turns}"
        self.nodes[step] = LLMNode(
            system="{{ inputs.system }}", messages=list(self.history), max_tokens=reply
        )
        self.nodes[call] = ToolNode(
            tool="simulated_call",
            after=[step],
            args={"function": kind.name, "latency_s": latency_s, "result_tokens": output_tokens},
        )
        self.history.append(ChatMessage(role="assistant", content=f"{{{{ {step} }}}}"))
        self.history.append(ChatMessage(role="user", content=f"{{{{ {call} }}}}"))
        # The reply, the tool output's user header and text, and the next closing header.
        self.context += reply + _HEADER_TOKENS + output_tokens
        self.context += count_tokens(f"{kind.name} returned:") + _HEADER_TOKENS
        self.turns += 1
        return True

    def finish(self, source_id: str) -> BenchProgram | None:
        if self.turns == 0:
            return None
        inputs = {"system": system_prompt(), "issue": self.issue}
        program = Program(
            name="coding_agent",
            description=f"coding-agent {source_id}",
            inputs=text_inputs(inputs),
            nodes=dict(self.nodes),
            outputs={"result": f"{{{{ tool_{self.turns - 1} }}}}"},
        )
        return BenchProgram(program, inputs, KIND, source_id, llm_calls=self.turns)
