"""What a workload is: agent programs built from a data set, with their inputs and tools.

A workload is plain data: `Program` objects (the ones YAML specs build), the inputs each
run gets, and the tool registry those programs call. Output lengths live in each LLM
node's `max_tokens`, so a simulated engine that answers every call with exactly
`max_tokens` tokens replays the trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from taskloom.errors import TaskloomError
from taskloom.program.models import InputSpec, Program
from taskloom.tools.registry import ToolRegistry


class WorkloadError(TaskloomError):
    """A workload cannot be built: an unknown name or bad options."""


class MissingDataPackage(WorkloadError):
    """The data set a workload is built from is not installed."""

    def __init__(self, module: str, pip_name: str) -> None:
        self.module = module
        self.pip_name = pip_name
        super().__init__(
            f"the data package '{module}' is not installed; install it with "
            f"`pip install {pip_name}` (workloads never download data at run time)"
        )


@dataclass(frozen=True)
class WorkloadOptions:
    """Limits that fit a workload to an engine.

    - `max_context_tokens`: a call's prompt plus its answer stays under this many tokens
      (counted as the simulator counts them); conversations are cut before the turn
      that would pass it, and data rows that cannot fit at all are skipped.
    - `max_output_tokens`: caps every answer's length (None: the trace's own length).
      Real CPU engines need a small cap to finish in minutes.
    - `agent_context_tokens`: the same limit for long agent sessions (coding-agent),
      which run on a long-context model (128K, Llama 3.1 8B's); kept apart so that the
      short workloads keep their 8K limit and their figures.
    - `mixed_coding_agent`: `mixed` gets coding-agent sessions as a fourth kind (off by
      default, so mixed's programs, and its old figures, stay as they were).
    """

    max_context_tokens: int = 8192
    max_output_tokens: int | None = None
    agent_context_tokens: int = 131072
    mixed_coding_agent: bool = False

    def __post_init__(self) -> None:
        if self.max_context_tokens < 64:
            raise WorkloadError("max_context_tokens must be at least 64")
        if self.agent_context_tokens < 64:
            raise WorkloadError("agent_context_tokens must be at least 64")
        if self.max_output_tokens is not None and self.max_output_tokens < 1:
            raise WorkloadError("max_output_tokens must be at least 1")

    def output_cap(self, tokens: int) -> int:
        """A trace length fitted to the cap; never below one token."""
        capped = tokens if self.max_output_tokens is None else min(tokens, self.max_output_tokens)
        return max(1, capped)


@dataclass(frozen=True)
class BenchProgram:
    """One program of a workload and the inputs its run gets."""

    program: Program
    inputs: dict[str, Any]
    kind: str
    source_id: str
    llm_calls: int


@dataclass(frozen=True)
class Workload:
    name: str
    programs: tuple[BenchProgram, ...]
    tools: ToolRegistry = field(default_factory=ToolRegistry)

    @property
    def llm_calls(self) -> int:
        return sum(p.llm_calls for p in self.programs)


def text_inputs(values: dict[str, str]) -> dict[str, InputSpec]:
    """Declared string inputs for every trace text a program quotes."""
    return {name: InputSpec(type="string") for name in values}
