"""What the program-aware scheduler keeps about each call and each engine, and reports.

Mutable records, owned by one scheduler and changed only in its synchronous decisions;
`SchedulerStats` is the frozen copy that leaves it.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio

from taskloom.backends.base import Backend, GenerateRequest
from taskloom.orchestrator.scheduler.balancer import (
    EngineLoad,
    EngineTally,
    RouteRequest,
    estimate_prompt_tokens,
)
from taskloom.orchestrator.scheduler.policies import CallSnapshot, Policy, ProgramSnapshot, atlas
from taskloom.orchestrator.scheduler.queues import QueueConfig, QueuePosition


class CallState(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class ScheduledCall:
    """One submitted call, across all its attempts (identity equality)."""

    request: GenerateRequest
    snapshot: CallSnapshot
    route: RouteRequest
    path_start_s: float  # its critical-path priority, recorded whatever the policy
    level: int
    rank: float
    tie_break: tuple[float, str, str, str]
    entered_level_s: float
    queued_since_s: float
    state: CallState = CallState.QUEUED
    turn: anyio.Event = field(default_factory=anyio.Event)
    waiting_s: float = 0.0  # of waits that ended
    service_s: float = 0.0  # of attempts that ended
    level_entered_service_s: float = 0.0
    engine: int | None = None
    attempt_started_s: float | None = None
    epoch: int = 0
    attempt_chunks: int = 0
    taken_back_from: int | None = None
    attempt_scope: anyio.CancelScope | None = None
    text_parts: list[str] = field(default_factory=list)
    generated_tokens: int = 0
    prompt_tokens: int | None = None
    cached_prompt_tokens: int = 0
    failed_on: set[int] = field(default_factory=set)
    moved_from: int | None = None  # the engine its last attempt failed on, until it restarts
    preemptions: int = 0
    preempted_at_s: list[float] = field(default_factory=list)
    resumed_at_s: list[float] = field(default_factory=list)  # one per preemption, once back
    error: BaseException | None = None

    @property
    def program_id(self) -> str:
        return self.request.program_id

    @property
    def done(self) -> bool:
        return self.state is CallState.DONE

    def service_at(self, now_s: float) -> float:
        running = now_s - self.attempt_started_s if self.attempt_started_s is not None else 0.0
        return self.service_s + running

    def waiting_at(self, now_s: float) -> float:
        queued = now_s - self.queued_since_s if self.state is CallState.QUEUED else 0.0
        return self.waiting_s + queued

    def is_fresh(self, now_s: float) -> bool:
        """Started at this very instant and has produced nothing yet."""
        return self.attempt_started_s == now_s and self.attempt_chunks == 0

    def position(self) -> QueuePosition:
        return QueuePosition(self.level, self.rank, self.entered_level_s, self.tie_break)

    def preempted(self, now_s: float) -> None:
        """A call that ranks better took its slot at `now_s`."""
        self.preemptions += 1
        self.preempted_at_s.append(now_s)

    def run_on(self, engine: int, now_s: float) -> None:
        """An attempt starts on `engine` at `now_s`; after a preemption, it resumes."""
        if len(self.resumed_at_s) < len(self.preempted_at_s):
            self.resumed_at_s.append(now_s)
        elif self.resumed_at_s and self.resumed_at_s[-1] == self.queued_since_s:
            # Taken back at the instant it resumed, before it produced anything (the
            # scheduler decides each instant again): it resumes only now.
            self.resumed_at_s[-1] = now_s
        self.state, self.engine, self.attempt_started_s = CallState.RUNNING, engine, now_s


def new_scheduled_call(
    request: GenerateRequest,
    now: float,
    policy: Policy,
    queue_config: QueueConfig,
    program: ProgramSnapshot,
    remaining_work: float | None,
) -> ScheduledCall:
    """The record of a call arriving at `now`, its priority given by `policy`."""
    snapshot = CallSnapshot(
        call_id=request.call_id,
        program_id=request.program_id,
        thread_id=request.thread_id,
        parent_call_ids=request.parent_call_ids,
        arrival_s=now,
        prompt_tokens=estimate_prompt_tokens(request),
        max_tokens=request.sampling.max_tokens,
        remaining_work=remaining_work,
    )
    priority = policy.priority(snapshot, program)
    return ScheduledCall(
        request=request,
        snapshot=snapshot,
        route=RouteRequest(request.call_id, request.program_id, snapshot.prompt_tokens, None),
        path_start_s=atlas(snapshot, program),
        level=queue_config.level_for(priority),
        rank=priority if policy.rank_by_priority else 0.0,
        tie_break=(now, request.program_id, request.thread_id, request.call_id),
        entered_level_s=now,
        queued_since_s=now,
    )


@dataclass(eq=False)
class EngineSlots:
    """One engine: the calls it runs now, against its cap, and whether it is in service."""

    index: int
    backend: Backend
    capacity: int
    running: dict[ScheduledCall, None] = field(default_factory=dict)  # insertion-ordered set
    suspected_by: set[int] = field(default_factory=set)  # ids of calls it failed
    dead: bool = False
    tally: EngineTally = field(default_factory=EngineTally)

    @property
    def alive(self) -> bool:
        return not self.dead and not self.suspected_by

    @property
    def has_free_slot(self) -> bool:
        return len(self.running) < self.capacity

    def load(self) -> EngineLoad:
        return EngineLoad(self.index, len(self.running), self.capacity, self.alive)


def engine_slots(
    backends: Sequence[Backend], max_in_flight: int | Sequence[int] | None
) -> list[EngineSlots]:
    """One record per engine, its cap `max_in_flight` (one for all, one each, or None
    for each backend's `capacity()`), never above the engine's capacity."""
    if max_in_flight is None:
        caps = [backend.capacity() for backend in backends]
    elif isinstance(max_in_flight, int):
        caps = [max_in_flight] * len(backends)
    else:
        caps = list(max_in_flight)
    if len(caps) != len(backends) or any(cap < 1 for cap in caps):
        raise ValueError(f"max_in_flight needs one cap of at least 1 per engine, got {caps}")
    # More than the engine runs at once would only wait in the engine's own queue, where
    # taskloom can no longer reorder or preempt.
    return [
        EngineSlots(index, backend, min(cap, backend.capacity()))
        for index, (cap, backend) in enumerate(zip(caps, backends, strict=True))
    ]


@dataclass(frozen=True)
class SchedulerStats:
    """Counters for reports."""

    preemptions: int
    demotions: int
    promotions: int
    queued: int
    running: int
    level_sizes: tuple[int, ...]
    engines: tuple[EngineTally, ...]
    dead_engines: tuple[int, ...]

    @property
    def prefix_cache_hit_rate(self) -> float:
        prompt = sum(engine.prompt_tokens for engine in self.engines)
        cached = sum(engine.cached_prompt_tokens for engine in self.engines)
        return cached / prompt if prompt else 0.0
