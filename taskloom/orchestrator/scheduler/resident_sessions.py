"""Resident sessions: when KV is short, whole programs wait, not single calls.

A long agent session (a coding agent: tens of turns, contexts of 30-80K tokens, seconds
of tool time between turns) only runs fast while the engine still holds its context:
each turn then prefills just the new tokens. When more sessions are under way than the
KV cache holds, every turn evicts another session's context, which is prefilled again on
its next turn, and the engine spends most of its time re-prefilling (thrashing). Holding
single calls back does not help: a session held back loses its cached prefix all the same.

So this scheduler keeps a set of *resident* programs whose working sets fit in a share of
the engines' KV (`kv_fraction`). A program's working set is the context its latest call
needs, prompt plus answer (`estimate_prompt_tokens` + `max_tokens`), the most it ever
asked for. Calls of resident programs are scheduled as by `ProgramAwareScheduler` (PLAS
priorities, preemption, balancer). Calls of any other program (a new session, or one
paused) wait here until it is admitted:

- a waiting program is admitted when its working set fits beside the resident ones;
- to make room, resident programs that are idle (no call in flight: on a tool call, or
  finished, which looks the same from here) are paused once they have been idle for
  twice the longest gap between their calls so far (at once for a program that has
  never come back from one, at most `pause_after_s`), the longest idle first, since it
  is the likeliest to have finished, and among equals the most served (PLAS's last). A
  paused program's KV may then be evicted; it comes back as a waiting program. A
  program with a call in flight is never paused;
- when the resident programs' contexts grow past the budget, idle ones are paused the
  same way until they fit again, before their next turns overflow the KV together;
- waiting programs are admitted by PLAS priority (least attained service first). One that
  does not fit is passed over by smaller ones behind it, until it has waited `beta` times
  its service (at least `STARVATION_FLOOR_S`): then it is starving, nothing passes it,
  and every idle resident is paused until it fits. So no program waits for ever;
- a program whose working set exceeds the whole budget still runs: it is admitted when it
  fits alone.

The budget is read from the engines (`kv_capacity_tokens()`: the simulated engine
reports it from its configuration, the in-process vLLM engine from its cache config, a
vLLM server from its /metrics) unless given; with several engines it is their total,
pooled (the balancer still places calls per engine). A backend that does not report its
KV and no budget given: every program is resident, so the scheduler is plain PLAS.

Decisions are made in the scheduler's decision pass and, like its placements, again in
the last pass of an instant: residency is worked out each pass from what it was at the
end of the previous instant plus everything known now, so the result does not depend on
the order in which the tasks of one instant report their events.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import anyio

from taskloom.backends.base import kv_capacity_of
from taskloom.orchestrator.scheduler.balancer import estimate_prompt_tokens
from taskloom.orchestrator.scheduler.program_aware import (
    DEFAULT_MAX_IN_FLIGHT,
    Oracle,
    ProgramAwareScheduler,
)
from taskloom.orchestrator.scheduler.records import CallState, ScheduledCall

if TYPE_CHECKING:
    from taskloom.backends.base import Backend, GenerateRequest
    from taskloom.orchestrator.scheduler.balancer import Balancer
    from taskloom.orchestrator.scheduler.queues import QueueConfig

PAUSE_POLICY = "plas-pause"
"""The policy name this scheduler is registered under: PLAS priorities, whole sessions
paused under KV pressure."""

DEFAULT_KV_FRACTION = 0.9
"""Share of the KV the resident working sets may fill; the rest is slack for estimates
that run short (characters / 4 against the engine's tokens), contexts that grow while
resident, and partly filled blocks. With the gap-based grace, 0.9 against 0.75: 232.7
against 247.4 s mean on coding-agent (60 sessions) at 0.05/s, 269.2 against 286.5 s at
0.06/s, 10.1 against 11.0 s on `h100-kv16k` mixed at 0.5/s, 30.3 against 34.2 s at
0.75/s. (With a fixed 30 s grace, at 40 sessions and 0.06/s: 0.6 307 s, 0.75 283 s,
0.9 304 s.)"""

DEFAULT_PAUSE_AFTER_S = 30.0
"""The longest a resident program is kept idle before a waiting one may take its place.
Coding-agent tool calls take ~3 s on average and 120 s at most: pausing every session
the moment its call ends gave 518 s mean at the point above (0.9 of the KV; a fixed
10 s gave 286 s and 30 s 283 s at 0.75), since most sessions paused came back seconds
later and lost their prefix. A fixed 30 s, though, kept every finished chat resident
for 30 s: on `h100-kv16k` mixed at 0.5 programs/s the mean went from fcfs's 10 s to
342 s. Hence the grace from each program's own gaps (`GAP_MARGIN`), capped here."""

GAP_MARGIN = 2.0
"""An idle program is kept this many times the longest gap between its calls so far (a
tool call, mostly) before a waiting program may take its place."""

MIN_WAKE_S = 1e-6
"""The shortest timer a waiting call sets, so that rounding never makes it spin."""

STARVATION_FLOOR_S = 30.0
"""A waiting program is starving (nothing passes it) once it has waited `beta` times its
attained service, and at least this long: a new session, with no service yet, would
otherwise be starving at once and the admission order would be plain arrival order."""


def engines_kv_tokens(backends: Sequence[Backend]) -> int | None:
    """The engines' KV in tokens, summed; None unless every backend reports it
    (`KvSized`: the simulated engine, in-process vLLM, a vLLM server's /metrics)."""
    sizes = [kv_capacity_of(backend) for backend in backends]
    known = [size for size in sizes if size is not None]
    return sum(known) if len(known) == len(backends) else None


class ResidentSessionScheduler(ProgramAwareScheduler):
    """`ProgramAwareScheduler` that runs only resident programs' calls (see the module).

    - `kv_budget_tokens`: tokens of working set the resident programs may hold; None for
      `kv_fraction` of what the engines report (`engines_kv_tokens`).
    - `pause_after_s`: the longest a resident program is kept idle (`_pause_due`) before
      a waiting program may take its place (0: as soon as its call ends).
    - the rest as `ProgramAwareScheduler`; `policy` orders the resident programs' calls,
      while waiting programs are always admitted least served first.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        policy: str = "plas",
        *,
        kv_budget_tokens: int | None = None,
        kv_fraction: float = DEFAULT_KV_FRACTION,
        pause_after_s: float = DEFAULT_PAUSE_AFTER_S,
        queues: QueueConfig | None = None,
        max_in_flight: int | Sequence[int] | None = None,
        balancer: Balancer | None = None,
        oracle: Oracle | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        super().__init__(backends, policy, queues=queues, max_in_flight=max_in_flight,
                         balancer=balancer, oracle=oracle, clock=clock)
        if not 0 < kv_fraction <= 1:
            raise ValueError(f"kv_fraction must be in (0, 1], got {kv_fraction}")
        if kv_budget_tokens is None:
            engines_kv = engines_kv_tokens(backends)
            kv_budget_tokens = None if engines_kv is None else int(engines_kv * kv_fraction)
        self.kv_budget_tokens = kv_budget_tokens
        self.pause_after_s = pause_after_s
        self.pauses = 0
        self._working_set: dict[str, int] = {}
        self._idle_since: dict[str, float] = {}
        self._longest_gap: dict[str, float] = {}
        self._resident: set[str] = set()
        # Residency at the end of the latest instant before `_settled_at`, which every
        # pass of that instant starts again from.
        self._settled_at = -math.inf
        self._resident_before_instant: frozenset[str] = frozenset()
        self._paused_before_instant = 0

    def resident_programs(self) -> list[str]:
        return sorted(self._resident)

    def working_set_tokens(self, program_id: str) -> int:
        return self._working_set.get(program_id, 0)

    # ----- what the base scheduler reports -----

    def _arrive(self, request: GenerateRequest) -> ScheduledCall:
        tokens = estimate_prompt_tokens(request) + request.sampling.max_tokens
        program = request.program_id
        self._working_set[program] = max(self._working_set.get(program, 0), tokens)
        if program not in self._live and program in self._idle_since:
            gap = self._clock() - self._idle_since[program]
            self._longest_gap[program] = max(self._longest_gap.get(program, 0.0), gap)
        return super()._arrive(request)

    def _end(self, call: ScheduledCall, now: float) -> None:
        super()._end(call, now)
        if call.program_id not in self._live:
            self._idle_since[call.program_id] = now
            if call.program_id in self._resident and self.pause_after_s > 0:
                self._wake_waiting_programs()

    def _wake_waiting_programs(self) -> None:
        """Let the calls of programs that are not resident set their timers again."""
        for program, calls in self._live.items():
            if program not in self._resident:
                for waiting in calls:
                    if waiting.state is CallState.QUEUED:
                        waiting.turn.set()

    def _may_start(self, call: ScheduledCall) -> bool:
        return self.kv_budget_tokens is None or call.program_id in self._resident

    def _fill_engines(self, now: float) -> None:
        if self.kv_budget_tokens is not None:
            self._settle_residency(now, self.kv_budget_tokens)
        super()._fill_engines(now)

    # ----- residency -----

    def _settle_residency(self, now: float, budget: int) -> None:
        if now != self._settled_at:
            self._settled_at = now
            self._resident_before_instant = frozenset(self._resident)
            self._paused_before_instant = self.pauses
        resident = set(self._resident_before_instant)
        pauses = self._paused_before_instant
        used = sum(self._working_set[p] for p in resident)
        waiting = sorted((p for p in self._live if p not in resident),
                         key=lambda p: self._admission_rank(p, now))
        for program in waiting:
            need = self._working_set[program]
            idle = sorted((p for p in resident if self._pausable(p, now)),
                          key=lambda p: self._pause_rank(p))
            to_pause: list[str] = []
            freed = 0
            for candidate in idle:
                if used - freed + need <= budget:
                    break
                to_pause.append(candidate)
                freed += self._working_set[candidate]
            fits = used - freed + need <= budget or len(to_pause) == len(resident)
            if not fits and not self._starving(program, now):
                continue  # smaller programs behind it may fit
            if not fits:
                to_pause = idle  # it is starving: clear every idle one out of its way
            resident.difference_update(to_pause)
            used -= sum(self._working_set[p] for p in to_pause)
            pauses += len(to_pause)
            if not fits and resident:
                break  # nothing passes a starving program
            resident.add(program)
            used += need
        if used > budget:
            # The resident programs' contexts grew past the budget: the idle ones make
            # room now, before their next turns overflow the KV together.
            for program in sorted((p for p in resident if self._pausable(p, now)),
                                  key=self._pause_rank):
                if used <= budget:
                    break
                resident.discard(program)
                used -= self._working_set[program]
                pauses += 1
        self._resident = resident
        self.pauses = pauses

    def _pausable(self, program: str, now: float) -> bool:
        """Idle, and since its `_pause_due`. With no grace, a program whose call ended at
        this instant counts as idle even if its next call arrives at this same instant
        too: the last pass of the instant sees that call and keeps it resident."""
        return program not in self._live and self._pause_due(program) <= now

    def _pause_due(self, program: str) -> float:
        """When an idle program may be paused: after `GAP_MARGIN` x the longest pause
        between its calls so far, at most `pause_after_s`. A program that has never come
        back from a pause may be paused at once: it may have finished (a chat, a
        one-call program), and its context, one turn's, is the cheapest to prefill
        again."""
        grace = min(self.pause_after_s, GAP_MARGIN * self._longest_gap.get(program, 0.0))
        return self._idle_since[program] + grace

    async def _wait_for_turn(self, call: ScheduledCall) -> None:
        """Wait as the base scheduler does, but a call of a program that is not resident
        also wakes when a resident may be paused: no other event may come then (every
        resident may have finished), and this call's task is the timer. A resident going
        idle wakes it too (`_end`), to set its timer again."""
        while call.state is CallState.QUEUED:
            due = self._next_pause_due(call.program_id)
            if due is None:
                await call.turn.wait()
            else:
                with anyio.move_on_after(max(due - self._clock(), MIN_WAKE_S)):
                    await call.turn.wait()
            if call.state is CallState.QUEUED:
                call.turn = anyio.Event()  # woken to look again, not to run
                self._dispatch()
        self._raise_if_failed(call)

    def _next_pause_due(self, program: str) -> float | None:
        """The next instant at which residency may change with no event: a resident
        becomes pausable, or `program` starts starving. Only future ones: at a past one
        the decision has been made, and waking for it again would spin."""
        if self.kv_budget_tokens is None or program in self._resident:
            return None
        now = self._clock()
        times = [self._pause_due(p) for p in self._resident if p not in self._live]
        times.append(self._waiting_since(program) + self._starvation_limit(program))
        return min((t for t in times if t > now), default=None)

    def _pause_rank(self, program: str) -> tuple[float, float, str]:
        """Smaller is paused first: the longest idle, then the most served."""
        served = self.table.get(program).attained_service_s
        return self._idle_since[program], -served, program

    def _admission_rank(self, program: str, now: float) -> tuple[bool, float, float, str]:
        """Smaller is admitted first: starving ones, the longest waiting first; then the
        others, the least served first (PLAS's order, whatever orders the calls)."""
        since = self._waiting_since(program)
        if self._starving(program, now):
            return False, since, 0.0, program
        return True, self.table.get(program).attained_service_s, since, program

    def _waiting_since(self, program: str) -> float:
        return min(call.snapshot.arrival_s for call in self._live[program])

    def _starving(self, program: str, now: float) -> bool:
        return self._waiting_since(program) + self._starvation_limit(program) <= now

    def _starvation_limit(self, program: str) -> float:
        served = self.table.get(program).attained_service_s
        return max(self.queue_config.beta * served, STARVATION_FLOOR_S)


def resident_session_scheduler(
    backends: Sequence[Backend],
    *,
    queues: QueueConfig | None = None,
    max_in_flight: int | Sequence[int] | None = DEFAULT_MAX_IN_FLIGHT,
    balancer: Balancer | None = None,
) -> ResidentSessionScheduler:
    """The scheduler registered as `PAUSE_POLICY`."""
    return ResidentSessionScheduler(backends, "plas", queues=queues,
                                    max_in_flight=max_in_flight, balancer=balancer)
