"""The program-aware scheduler: priorities from the program table, enforced by taskloom.

vLLM only reorders its waiting queue; it never evicts a running request for a better
one. So this scheduler holds calls itself and decides what runs:

- admission control: each engine gets at most `max_in_flight` calls at once, and the
  rest wait here, in the multi-level queue, ordered by the policy;
- preemption by abort and resume: when a waiting call ranks better than a running one
  and no slot is free, the running call's stream is aborted and the call goes back to
  the queue with the text it has produced so far; its next attempt resumes after that
  text (`attempt.py`);
- the call's level goes to the engine as its `priority`, so the engine's queue agrees;
- with several engines, a balancer picks the engine, and an engine that fails a call, or
  a health check (`engine_down`), is taken out of service while its calls move to another
  engine (`failover.py`); a passing health check (`engine_up`) brings it back.

Every decision is made synchronously in `_dispatch` when something happens (a call
arrives, finishes, crosses its quantum, is cancelled); calls stream in their consumers'
tasks, so there is no background task. Ties between calls of one instant are broken by
(arrival, program, thread, call id), never by task order: a virtual-time run repeats.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing, nullcontext
from dataclasses import replace

import anyio

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.errors import BackendError, TaskloomError
from taskloom.orchestrator.engines_report import CallMove
from taskloom.orchestrator.scheduler.attempt import run_attempt, stop_attempt
from taskloom.orchestrator.scheduler.balancer import Balancer, LocalityBalancer
from taskloom.orchestrator.scheduler.call_reports import CallWatch
from taskloom.orchestrator.scheduler.decision_timer import DecisionTimer
from taskloom.orchestrator.scheduler.failover import Failover
from taskloom.orchestrator.scheduler.fresh_starts import FreshStarts
from taskloom.orchestrator.scheduler.policies import Policy, get_policy, starvation_measure
from taskloom.orchestrator.scheduler.program_table import ProgramTable
from taskloom.orchestrator.scheduler.queues import (
    MultiLevelQueue,
    QueueConfig,
    exceeds_quantum,
    promote_starving,
)
from taskloom.orchestrator.scheduler.records import (
    CallState,
    EngineSlots,
    ScheduledCall,
    SchedulerStats,
    engine_slots,
    new_scheduled_call,
)

DEFAULT_MAX_IN_FLIGHT = 128
"""Calls per engine the program-aware policies keep in flight (at most the engine's
capacity); the rest wait here, ordered by the policy. Picked by a sweep on the simulated
H100 (benchmarks/autellix.py sweep, mixed at 2.5 programs/s; 150 and 300 programs): 128
had the lowest mean latency (41.1 s against fcfs's 44.0 s at 300), 256 was within 2%, 64
leaves too small a batch (53.7 s), and 512 or more is never reached."""

Oracle = Callable[[GenerateRequest], float]
"""The true remaining work of a call's program, for `sjf-oracle` only."""


class ProgramCancelled(TaskloomError):
    """The call's program was cancelled with `cancel_program`."""


class ProgramAwareScheduler:
    """Drives one or more engines with a policy from `policies.BUILT_IN_POLICIES`.

    - `policy`: a name ("plas", "atlas", "mlfq", "fcfs", "sjf-oracle") or a `Policy`.
    - `queues`: levels, quanta and anti-starvation ratio (ignored by one-level policies).
    - `max_in_flight`: per-engine cap on calls in flight; one number for all engines, one
      per engine, or None for each backend's `capacity()`; never above the capacity.
    - `balancer`: picks the engine when there are several (default: `LocalityBalancer`).
    - `oracle`: the true remaining work, for `sjf-oracle`.
    - `clock`: seconds; the run's clock (virtual under the simulator) by default.
    """

    def __init__(
        self,
        backends: Sequence[Backend],
        policy: str | Policy = "plas",
        *,
        queues: QueueConfig | None = None,
        max_in_flight: int | Sequence[int] | None = None,
        balancer: Balancer | None = None,
        oracle: Oracle | None = None,
        clock: Callable[[], float] = anyio.current_time,
    ) -> None:
        if not backends:
            raise ValueError("a scheduler needs at least one backend")
        self.policy = get_policy(policy) if isinstance(policy, str) else policy
        self.queue_config = self.policy.queue_config(queues or QueueConfig())
        self.table = ProgramTable()
        self.balancer: Balancer = balancer if balancer is not None else LocalityBalancer()
        self._engines = engine_slots(backends, max_in_flight)
        self._queue: MultiLevelQueue[ScheduledCall] = MultiLevelQueue(self.queue_config)
        self._live: dict[str, dict[ScheduledCall, None]] = {}
        self._oracle = oracle
        self._clock = clock
        self._last_starvation_scan_s = -math.inf
        self._fresh_starts = FreshStarts()
        self._failover = Failover(self._engines, self.table)
        self._preemptions = self._demotions = self._promotions = 0
        self.call_watch = CallWatch([backend.name for backend in backends])
        self.decision_timer: DecisionTimer | None = None  # a benchmark's, for router cost

    # ----- the Scheduler seam -----

    async def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        call = self._arrive(request)
        try:
            while True:
                await self._wait_for_turn(call)
                if call.done:
                    return
                assert call.engine is not None
                engine = self._engines[call.engine]
                priority = call.level if self.policy.multi_level else int(call.rank)
                async with aclosing(run_attempt(call, engine, priority, self)) as chunks:
                    async for chunk in chunks:
                        yield chunk
                if call.done:
                    self._raise_if_failed(call)
                    return
        finally:
            self._leave(call)

    async def close(self) -> None:
        for engine in self._engines:
            await engine.backend.close()

    # ----- control and reports -----

    def cancel_program(self, program_id: str) -> int:
        """Remove the program's waiting calls and abort its running ones; their streams
        raise `ProgramCancelled`. Returns how many calls were cancelled."""
        calls = list(self._live.get(program_id, {}))
        now = self._clock()
        for call in calls:
            call.error = ProgramCancelled(f"program {program_id!r} was cancelled")
            self._end(call, now)
        self._dispatch()
        return len(calls)

    def stats(self) -> SchedulerStats:
        return SchedulerStats(
            preemptions=self._preemptions,
            demotions=self._demotions,
            promotions=self._promotions,
            queued=len(self._queue),
            running=sum(len(engine.running) for engine in self._engines),
            level_sizes=tuple(self._queue.level_sizes()),
            engines=tuple(replace(engine.tally) for engine in self._engines),
            dead_engines=tuple(engine.index for engine in self._engines if engine.dead),
        )

    def queued_call_ids(self) -> list[str]:
        """Waiting calls, best first."""
        return [call.request.call_id for call in self._queue.in_order()]

    def engine_caps(self) -> tuple[int, ...]:
        """Each engine's cap on calls in flight, as admission uses it."""
        return tuple(engine.capacity for engine in self._engines)

    def running_call_ids(self, engine: int = 0) -> list[str]:
        return [call.request.call_id for call in self._engines[engine].running]

    def take_moves(self, program_id: str) -> list[CallMove]:
        """The program's calls that moved off a failed engine (and forget them)."""
        return self._failover.take_moves(program_id)

    # ----- engine health, from a health check -----

    def engine_down(self, index: int, reason: str) -> None:
        """Take the engine out of service; its calls resume elsewhere from their text."""
        now = self._clock()
        for call in self._failover.take_out(index):
            self._requeue(call, now)
        self._dispatch()

    def engine_up(self, index: int) -> None:
        """The engine answers again: it takes calls again."""
        if self._failover.bring_back(index, self._queue.in_order()):
            self._dispatch()

    # ----- arrival and departure -----

    def _arrive(self, request: GenerateRequest) -> ScheduledCall:
        now = self._clock()
        work = self._oracle(request) if self._oracle is not None else None
        call = new_scheduled_call(request, now, self.policy, self.queue_config,
                                  self.table.snapshot(request.program_id), work)
        self.table.call_started(request.program_id)
        self._live.setdefault(request.program_id, {})[call] = None
        self._queue.push(call, call.position())
        self._dispatch()
        return call

    def _leave(self, call: ScheduledCall) -> None:
        """The consumer is done with the stream: finished, failed, closed or cancelled."""
        if call.state is not CallState.DONE:
            self._end(call, self._clock())
            self._dispatch()

    def _end(self, call: ScheduledCall, now: float) -> None:
        """Take a call out of the queue or off its engine, and account it."""
        if call.state is CallState.DONE:
            return
        self.call_watch.ended(call, now, self.policy.multi_level)
        if call.state is CallState.QUEUED:
            self._queue.remove(call)
            self._account_wait(call, now)
        else:
            self._stop_attempt(call, now)
        call.state = CallState.DONE
        call.turn.set()
        self._failover.forgive(call)
        self.table.call_ended(
            call.program_id, call.request.thread_id, call.request.call_id,
            call.path_start_s, call.service_s,
        )
        self.balancer.forget(call.request.call_id)
        live = self._live.get(call.program_id)
        if live is not None:
            live.pop(call, None)
            if not live:
                del self._live[call.program_id]

    @staticmethod
    def _raise_if_failed(call: ScheduledCall) -> None:
        if call.error is not None:
            raise call.error

    async def _wait_for_turn(self, call: ScheduledCall) -> None:
        while call.state is CallState.QUEUED:
            await call.turn.wait()
        self._raise_if_failed(call)

    # ----- what an attempt reports -----

    def chunk_received(self, call: ScheduledCall, epoch: int, chunk: Chunk) -> None:
        now = self._clock()
        if call.epoch == epoch and call.attempt_chunks == 1 and call.engine is not None:
            # The engine has computed the prompt: the program's context is there now.
            self.table.placed_on(call.program_id, call.engine, now, call.tie_break)
        if chunk.finished:
            self._finish(call, now)
        elif call.state is CallState.RUNNING and call.epoch == epoch:
            self._maybe_demote(call, now)

    def attempt_failed(
        self, call: ScheduledCall, engine: EngineSlots, epoch: int, error: Exception
    ) -> None:
        now = self._clock()
        if call.state is CallState.RUNNING and call.epoch == epoch:
            self._requeue(call, now)
        self._failover.call_failed(call, engine)
        if call.state is CallState.QUEUED and not self._failover.has_engine_to_try(call):
            call.error = error
            self._end(call, now)
        self._dispatch()
        self._raise_if_failed(call)

    def _finish(self, call: ScheduledCall, now: float) -> None:
        if call.engine is not None:
            self._engines[call.engine].tally.finished_calls += 1
        self._failover.call_succeeded(call)
        self._end(call, now)
        self._dispatch()

    def _maybe_demote(self, call: ScheduledCall, now: float) -> None:
        if not self.policy.demotes:
            return
        in_level = call.service_at(now) - call.level_entered_service_s
        if exceeds_quantum(self.queue_config, call.level, in_level):
            call.level += 1
            call.level_entered_service_s = call.service_at(now)
            call.entered_level_s = now
            self._demotions += 1
            self._dispatch()  # a waiting call may now outrank it

    # ----- the decision -----

    def _dispatch(self) -> None:
        with self.decision_timer or nullcontext():
            self._decide()

    def _decide(self) -> None:
        """Start, and preempt for, the best waiting calls until no engine can take more.

        Several events can happen at one instant (calls finishing in the same engine
        step, their programs' next calls arriving), and the tasks that report them run in
        any order. So each pass first takes back the calls started earlier at this same
        instant that have not produced anything, and decides again for all of them in
        queue order: the last pass of an instant sees every event of it, and its result
        does not depend on the order they came in. A call placed again on the same engine
        keeps its attempt; the others' attempts are aborted before the engine did work.
        """
        now = self._clock()
        taken_back = self._take_back_fresh(now)
        self.balancer.rewind(now)
        self._promote_starving(now)
        self._fill_engines(now)
        for call, epoch in taken_back.items():
            call.taken_back_from = None
            kept = call.state is CallState.RUNNING and call.epoch == epoch
            if not kept and call.attempt_scope is not None:
                call.attempt_scope.cancel()  # placed elsewhere, or waiting again

    def _take_back_fresh(self, now: float) -> dict[ScheduledCall, int]:
        """Return to the queue the calls started at `now` that have produced nothing."""
        fresh: dict[ScheduledCall, int] = {}
        for call in self._fresh_starts.fresh(now, self._engines):
            assert call.engine is not None
            engine = self._engines[call.engine]
            fresh[call] = call.epoch
            call.taken_back_from = engine.index
            del engine.running[call]
            engine.tally.attempts -= 1
            call.state, call.engine, call.attempt_started_s = CallState.QUEUED, None, None
            call.queued_since_s = now  # its wait was banked when it started
            call.turn = anyio.Event()
            self._queue.push(call, call.position())
        return fresh

    def _fill_engines(self, now: float) -> None:
        skipped: set[ScheduledCall] = set()
        while True:
            call = next((c for c in self._queue.in_order()
                         if c not in skipped and self._may_start(c)), None)
            if call is None:
                return
            candidates = self._candidates(call)
            if not candidates:
                if self._failover.all_dead():
                    call.error = BackendError("every engine has failed")
                    self._end(call, now)
                    continue
                skipped.add(call)  # its engines are out of service for now
                continue
            free = next((i for i in candidates if self._engines[i].has_free_slot), None)
            if free is not None:
                self._start(call, self._engines[free], now)
                continue
            victim = self._victim(call, candidates)
            if victim is not None:
                assert victim.engine is not None
                engine = self._engines[victim.engine]
                self._preempt(victim, now)
                self._start(call, engine, now)
                continue
            if not self._could_run_anywhere(call):
                return  # every later call ranks no better, so none could either
            skipped.add(call)

    def _may_start(self, call: ScheduledCall) -> bool:
        """False holds a waiting call back (`resident_sessions.py` holds whole programs)."""
        return True

    def _candidates(self, call: ScheduledCall) -> list[int]:
        context = self.table.get(call.program_id).context_engine
        route = replace(call.route, context_engine=context)
        loads = [engine.load() for engine in self._engines]
        return [i for i in self.balancer.candidates(route, loads) if i not in call.failed_on]

    def _victim(self, call: ScheduledCall, candidates: list[int]) -> ScheduledCall | None:
        """The worst running call on the candidate engines that `call` outranks."""
        running = [
            c for i in candidates for c in self._engines[i].running if self._outranks(call, c)
        ]
        return max(running, key=ScheduledCall.position) if running else None

    def _outranks(self, call: ScheduledCall, running: ScheduledCall) -> bool:
        return self.policy.preemptive and (call.level, call.rank) < (running.level, running.rank)

    def _could_run_anywhere(self, call: ScheduledCall) -> bool:
        return any(
            engine.has_free_slot or any(self._outranks(call, running) for running in engine.running)
            for engine in self._engines
            if engine.alive
        )

    def _start(self, call: ScheduledCall, engine: EngineSlots, now: float) -> None:
        self._queue.remove(call)
        self._account_wait(call, now)
        # Taken back and placed on the same engine again: the attempt goes on untouched.
        if call.taken_back_from != engine.index:
            call.epoch += 1
            call.attempt_chunks = 0
        call.taken_back_from = None
        self._failover.started(call, engine.index)
        self._fresh_starts.started(call, now)
        call.run_on(engine.index, now)
        engine.running[call] = None
        engine.tally.attempts += 1
        call.turn.set()

    def _preempt(self, call: ScheduledCall, now: float) -> None:
        assert call.engine is not None
        self._engines[call.engine].tally.preemptions += 1
        self._preemptions += 1
        call.preempted(now)
        self._requeue(call, now)

    def _requeue(self, call: ScheduledCall, now: float) -> None:
        # It keeps its place in its level: it was there before the call that displaced it.
        self._stop_attempt(call, now)
        call.state, call.turn, call.queued_since_s = CallState.QUEUED, anyio.Event(), now
        self._queue.push(call, call.position())

    def _stop_attempt(self, call: ScheduledCall, now: float) -> None:
        """Free the call's slot and bank its service; abort the stream if it is waiting
        for a chunk (otherwise it stops at its next check)."""
        if call.engine is not None:
            self._engines[call.engine].running.pop(call, None)
        stop_attempt(call, now)

    def _account_wait(self, call: ScheduledCall, now: float) -> None:
        waited = now - call.queued_since_s
        call.waiting_s += waited
        self.table.add_waiting(call.program_id, waited)

    def _promote_starving(self, now: float) -> None:
        # Once per instant is enough: waiting only grows with time.
        if self.policy.starvation == "off" or now == self._last_starvation_scan_s:
            return
        self._last_starvation_scan_s = now

        def measure(call: ScheduledCall) -> tuple[float, float]:
            program = self.table.get(call.program_id)
            return starvation_measure(
                self.policy.starvation,
                call.waiting_at(now),
                call.service_at(now),
                program.waiting_s,
                program.attained_service_s,
            )

        promoted = promote_starving(self._queue, now, measure)
        for call in promoted:
            call.level, call.entered_level_s = 0, now
            call.level_entered_service_s = call.service_at(now)
        self._promotions += len(promoted)
