"""Scheduling policies as small pure functions over a snapshot of the program table.

A policy answers one question when a call arrives: what is its priority (seconds of
service; lower runs earlier)? The multi-level queue turns the priority into a level, and
the `Policy` record says how the scheduler treats the call afterwards: whether it may
preempt, whether it drops levels as it runs, and what anti-starvation compares.

- `fcfs`: every call is equal; arrival order decides. What a plain engine does.
- `mlfq`: every call starts at the top and drops as it runs; programs are invisible.
- `plas` (program-level attained service): the program's service so far. Programs that
  have had little run first, so short programs are not stuck behind long ones.
- `atlas` (attained service along the critical path): the longest chain of service that
  leads to this call through its parents, so the parallel threads of one program keep
  the same priority and finish together.
- `sjf-oracle`: the program's true remaining work, known in advance. An upper bound for
  plots; no real scheduler knows it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from taskloom.orchestrator.scheduler.policy_registry import UnknownPolicy
from taskloom.orchestrator.scheduler.queues import QueueConfig


@dataclass(frozen=True)
class CallSnapshot:
    """What a policy may know about an arriving call.

    `remaining_work` is only filled for the oracle policy: the program's true remaining
    work (any unit, lower is shorter).
    """

    call_id: str
    program_id: str
    thread_id: str
    parent_call_ids: tuple[str, ...] = ()
    arrival_s: float = 0.0
    prompt_tokens: int = 0
    max_tokens: int = 0
    remaining_work: float | None = None


@dataclass(frozen=True)
class ProgramSnapshot:
    """A program's row of the table. The mappings are read-only views.

    - `attained_service_s`: engine time of the program's finished calls.
    - `waiting_s`: time its calls spent queued, summed.
    - `call_path_end_s`: for each finished call, its critical-path priority plus its own
      service: where the critical path stands after it.
    - `thread_critical_path_s`: the same, for the latest finished call of each thread.
    - `critical_path_s`: the longest such path in the program so far.
    """

    program_id: str
    attained_service_s: float = 0.0
    waiting_s: float = 0.0
    critical_path_s: float = 0.0
    thread_critical_path_s: Mapping[str, float] = field(default_factory=dict)
    call_path_end_s: Mapping[str, float] = field(default_factory=dict)


PriorityFn = Callable[[CallSnapshot, ProgramSnapshot], float]


def fcfs(call: CallSnapshot, program: ProgramSnapshot) -> float:
    """Everyone equal: the queue's arrival order is the whole policy."""
    return 0.0


def mlfq(call: CallSnapshot, program: ProgramSnapshot) -> float:
    """Every call starts at the top; demotion while it runs does the rest."""
    return 0.0


def plas(call: CallSnapshot, program: ProgramSnapshot) -> float:
    """The program's attained service: its finished calls' engine time."""
    return program.attained_service_s


def atlas(call: CallSnapshot, program: ProgramSnapshot) -> float:
    """The longest path of service that ends at one of the call's parents.

    Without known parents (a root call, or a call behind a tool node the executor does
    not trace through) the call continues its own thread's path, and a call on a new
    thread continues the program's longest path.
    """
    parent_paths = [
        program.call_path_end_s[parent]
        for parent in call.parent_call_ids
        if parent in program.call_path_end_s
    ]
    if parent_paths:
        return max(parent_paths)
    thread_path = program.thread_critical_path_s.get(call.thread_id)
    return thread_path if thread_path is not None else program.critical_path_s


def sjf_oracle(call: CallSnapshot, program: ProgramSnapshot) -> float:
    """The program's true remaining work; without an oracle, the call's own length."""
    return call.remaining_work if call.remaining_work is not None else float(call.max_tokens)


StarvationBasis = Literal["program", "call", "off"]


@dataclass(frozen=True)
class Policy:
    """A priority function and how the scheduler treats calls under it.

    - `multi_level`: priorities map to the configured levels; otherwise one FIFO level.
    - `rank_by_priority`: inside a level, order by priority before arrival (SJF).
    - `preemptive`: a waiting call that ranks better than a running one takes its slot.
    - `demotes`: running calls drop a level when they exceed the level's quantum.
    - `starvation`: whose waiting and service anti-starvation compares.
    """

    name: str
    priority: PriorityFn
    multi_level: bool
    rank_by_priority: bool
    preemptive: bool
    demotes: bool
    starvation: StarvationBasis

    def queue_config(self, configured: QueueConfig) -> QueueConfig:
        return configured if self.multi_level else QueueConfig.single()


def starvation_measure(
    basis: StarvationBasis,
    call_waiting_s: float,
    call_service_s: float,
    program_waiting_s: float,
    program_service_s: float,
) -> tuple[float, float]:
    """(waiting, service) that anti-starvation divides.

    Program-level policies rank by what the whole program received, so they compare the
    whole program's waiting with its service; MLFQ ranks a call by its own service.
    """
    if basis == "program":
        return program_waiting_s + call_waiting_s, program_service_s + call_service_s
    if basis == "call":
        return call_waiting_s, call_service_s
    return 0.0, 1.0


BUILT_IN_POLICIES: tuple[Policy, ...] = (
    Policy("fcfs", fcfs, False, False, False, False, "off"),
    Policy("mlfq", mlfq, True, False, True, True, "call"),
    Policy("plas", plas, True, False, True, True, "program"),
    Policy("atlas", atlas, True, False, True, True, "program"),
    Policy("sjf-oracle", sjf_oracle, False, True, True, False, "off"),
)
"""Every built-in policy; `registry.py` registers a scheduler under each name."""

POLICIES: Mapping[str, Policy] = {policy.name: policy for policy in BUILT_IN_POLICIES}


def get_policy(name: str) -> Policy:
    """The built-in policy called `name`, for `ProgramAwareScheduler(..., "plas")`."""
    if name not in POLICIES:
        raise UnknownPolicy(name, POLICIES)
    return POLICIES[name]
