"""The program-aware scheduler: priorities from the program table, enforced by taskloom.

vLLM only reorders its waiting queue; it never evicts a running request for a better
one. So this scheduler holds calls itself and decides what runs:

- admission control: each engine gets at most `max_in_flight` calls at once, and the
  rest wait here, in the multi-level queue, ordered by the policy;
- preemption by abort and resume: when a waiting call ranks better than a running one
  and no slot is free, the running call's stream is aborted and the call goes back to
  the queue with the text it has produced so far. When it runs again it is resubmitted
  with that text as `resume_text` and `max_tokens` reduced, so the engine's prefix cache
  serves most of the re-prefill. The consumer's stream never sees the seam: every chunk
  it was given stays, and no text is repeated;
- the call's level is passed to the engine as its `priority`, so the engine's own queue
  agrees;
- with several engines, a balancer picks the engine, and an engine that fails a call is
  taken out of service while the call moves, with its text so far, to another engine.

Every decision is made synchronously when something happens (a call arrives, finishes,
crosses its quantum, is cancelled), in `_dispatch`. Calls stream in their consumers' own
tasks; the scheduler needs no background task and no start-up. Ties between calls that
arrive at one instant are broken by (arrival, program, thread, call id), never by which
task ran first, so a run on virtual time is reproducible.
"""

from __future__ import annotations

import enum
import math
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing, suppress
from dataclasses import dataclass, field, replace

import anyio

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.errors import BackendError, TaskloomError
from taskloom.orchestrator.scheduler.balancer import (
    Balancer,
    EngineLoad,
    EngineTally,
    LocalityBalancer,
    RouteRequest,
    estimate_prompt_tokens,
)
from taskloom.orchestrator.scheduler.policies import (
    CallSnapshot,
    Policy,
    atlas,
    get_policy,
    starvation_measure,
)
from taskloom.orchestrator.scheduler.program_table import ProgramTable
from taskloom.orchestrator.scheduler.queues import (
    MultiLevelQueue,
    QueueConfig,
    QueuePosition,
    exceeds_quantum,
    promote_starving,
)

DEFAULT_MAX_IN_FLIGHT = 128
"""Calls per engine the program-aware policies keep in flight (at most the engine's
capacity); the rest wait here, where the policy orders them. Picked by a sweep on the
simulated H100 (benchmarks/autellix.py sweep, mixed workload at 2.5 programs/s; 150 and
300 programs): 128 had the lowest mean latency (41.1 s against fcfs's 44.0 s at 300
programs), 256 was within 2%, 64 leaves too little batch for the engine's throughput
(53.7 s), and 512 or more is never reached, so the policy has nothing to order."""

Oracle = Callable[[GenerateRequest], float]
"""The true remaining work of a call's program, for `sjf-oracle` only."""


class ProgramCancelled(TaskloomError):
    """The call's program was cancelled with `cancel_program`."""


class _State(enum.Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"


@dataclass(eq=False)
class _Call:
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
    state: _State = _State.QUEUED
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
    error: BaseException | None = None

    @property
    def program_id(self) -> str:
        return self.request.program_id

    @property
    def done(self) -> bool:
        return self.state is _State.DONE

    def service_at(self, now_s: float) -> float:
        running = now_s - self.attempt_started_s if self.attempt_started_s is not None else 0.0
        return self.service_s + running

    def waiting_at(self, now_s: float) -> float:
        queued = now_s - self.queued_since_s if self.state is _State.QUEUED else 0.0
        return self.waiting_s + queued

    def is_fresh(self, now_s: float) -> bool:
        """Started at this very instant and has produced nothing yet."""
        return self.attempt_started_s == now_s and self.attempt_chunks == 0

    def position(self) -> QueuePosition:
        return QueuePosition(self.level, self.rank, self.entered_level_s, self.tie_break)


@dataclass(eq=False)
class _Engine:
    index: int
    backend: Backend
    capacity: int
    running: dict[_Call, None] = field(default_factory=dict)  # insertion-ordered set
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


class ProgramAwareScheduler:
    """Drives one or more engines with a policy from `policies.POLICIES`.

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
        self._engines = [
            _Engine(i, backend, cap) for i, (backend, cap) in
            enumerate(zip(backends, _caps(backends, max_in_flight), strict=True))
        ]
        self._queue: MultiLevelQueue[_Call] = MultiLevelQueue(self.queue_config)
        self._live: dict[str, dict[_Call, None]] = {}
        self._oracle = oracle
        self._clock = clock
        self._last_starvation_scan_s = -math.inf
        self._preemptions = self._demotions = self._promotions = 0

    # ----- the Scheduler seam -----

    async def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        call = self._arrive(request)
        try:
            while True:
                await self._wait_for_turn(call)
                if call.done:
                    return
                async with aclosing(self._attempt(call)) as chunks:
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

    def running_call_ids(self, engine: int = 0) -> list[str]:
        return [call.request.call_id for call in self._engines[engine].running]

    # ----- arrival and departure -----

    def _arrive(self, request: GenerateRequest) -> _Call:
        now = self._clock()
        program = self.table.snapshot(request.program_id)
        snapshot = CallSnapshot(
            call_id=request.call_id,
            program_id=request.program_id,
            thread_id=request.thread_id,
            parent_call_ids=request.parent_call_ids,
            arrival_s=now,
            prompt_tokens=estimate_prompt_tokens(request),
            max_tokens=request.sampling.max_tokens,
            remaining_work=self._oracle(request) if self._oracle is not None else None,
        )
        priority = self.policy.priority(snapshot, program)
        call = _Call(
            request=request,
            snapshot=snapshot,
            route=RouteRequest(
                request.call_id, request.program_id, snapshot.prompt_tokens, None
            ),
            path_start_s=atlas(snapshot, program),
            level=self.queue_config.level_for(priority),
            rank=priority if self.policy.rank_by_priority else 0.0,
            tie_break=(now, request.program_id, request.thread_id, request.call_id),
            entered_level_s=now,
            queued_since_s=now,
        )
        self.table.call_started(request.program_id)
        self._live.setdefault(request.program_id, {})[call] = None
        self._queue.push(call, call.position())
        self._dispatch()
        return call

    def _leave(self, call: _Call) -> None:
        """The consumer is done with the stream: finished, failed, closed or cancelled."""
        if call.state is not _State.DONE:
            self._end(call, self._clock())
            self._dispatch()

    def _end(self, call: _Call, now: float) -> None:
        """Take a call out of the queue or off its engine, and account it."""
        if call.state is _State.DONE:
            return
        if call.state is _State.QUEUED:
            self._queue.remove(call)
            self._account_wait(call, now)
        else:
            self._stop_attempt(call, now)
        call.state = _State.DONE
        call.turn.set()
        self._forgive_engines(call)
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
    def _raise_if_failed(call: _Call) -> None:
        if call.error is not None:
            raise call.error

    async def _wait_for_turn(self, call: _Call) -> None:
        while call.state is _State.QUEUED:
            await call.turn.wait()
        self._raise_if_failed(call)

    # ----- one attempt on one engine -----

    async def _attempt(self, call: _Call) -> AsyncGenerator[Chunk, None]:
        assert call.engine is not None
        engine, epoch = self._engines[call.engine], call.epoch
        generated_before = call.generated_tokens
        last: Chunk | None = None
        stream = engine.backend.generate(self._attempt_request(call))
        try:
            while call.state is _State.RUNNING and call.epoch == epoch:
                # The scope covers only the wait for the next chunk, never a yield, so a
                # preemption (which cancels it) cannot land in the consumer's code.
                failure: Exception | None = None
                with anyio.CancelScope() as scope:
                    call.attempt_scope = scope
                    try:
                        chunk: Chunk | None = await anext(stream)
                    except StopAsyncIteration:
                        chunk = None
                    except Exception as error:
                        failure = error
                    finally:
                        call.attempt_scope = None
                if scope.cancelled_caught:
                    break  # preempted or cancelled; the loop condition says which
                if failure is not None:
                    self._attempt_failed(call, engine, epoch, failure)
                    return
                if chunk is None:  # the stream ended without saying so: it is finished
                    chunk = _closing_chunk(last)
                last = chunk
                yield self._on_chunk(call, epoch, chunk, generated_before)
                if chunk.finished:
                    await _drain(stream)
                    return
        finally:
            _tally_prompt(engine.tally, last)
            await stream.aclose()

    def _attempt_request(self, call: _Call) -> GenerateRequest:
        request = call.request
        resume = "".join(call.text_parts)
        budget = request.sampling.max_tokens - call.generated_tokens
        return replace(
            request,
            resume_text=request.resume_text + resume,
            sampling=replace(request.sampling, max_tokens=max(budget, 1)),
            priority=call.level if self.policy.multi_level else int(call.rank),
        )

    def _on_chunk(self, call: _Call, epoch: int, chunk: Chunk, generated_before: int) -> Chunk:
        """Record a chunk and hand the consumer its version: token counts for the whole
        call, not the attempt."""
        now = self._clock()
        call.text_parts.append(chunk.text)
        if call.epoch == epoch:
            call.attempt_chunks += 1
            if call.attempt_chunks == 1 and call.engine is not None:
                # The engine has computed the prompt: the program's context is there now.
                self.table.placed_on(call.program_id, call.engine)
        call.generated_tokens = generated_before + chunk.generated_tokens
        if call.prompt_tokens is None:
            call.prompt_tokens = chunk.prompt_tokens
            call.cached_prompt_tokens = chunk.cached_prompt_tokens
        out = Chunk(
            text=chunk.text,
            prompt_tokens=call.prompt_tokens,
            generated_tokens=call.generated_tokens,
            cached_prompt_tokens=call.cached_prompt_tokens,
            finished=chunk.finished,
            finish_reason=chunk.finish_reason,
        )
        if chunk.finished:
            self._finish(call, now)
        elif call.state is _State.RUNNING and call.epoch == epoch:
            self._maybe_demote(call, now)
        return out

    def _finish(self, call: _Call, now: float) -> None:
        if call.engine is not None:
            self._engines[call.engine].tally.finished_calls += 1
        for index in call.failed_on:  # it failed there and worked here: that engine died
            self._declare_dead(index)
        call.failed_on.clear()
        self._end(call, now)
        self._dispatch()

    def _maybe_demote(self, call: _Call, now: float) -> None:
        if not self.policy.demotes:
            return
        in_level = call.service_at(now) - call.level_entered_service_s
        if exceeds_quantum(self.queue_config, call.level, in_level):
            call.level += 1
            call.level_entered_service_s = call.service_at(now)
            call.entered_level_s = now
            self._demotions += 1
            self._dispatch()  # a waiting call may now outrank it

    # ----- engine failure -----

    def _attempt_failed(self, call: _Call, engine: _Engine, epoch: int, error: Exception) -> None:
        engine.tally.failures += 1
        now = self._clock()
        if call.state is _State.RUNNING and call.epoch == epoch:
            self._stop_attempt(call, now)
            call.state = _State.QUEUED
            call.turn = anyio.Event()
            call.queued_since_s = now
            self._queue.push(call, call.position())
        call.failed_on.add(engine.index)
        if len(self._engines) > 1:
            engine.suspected_by.add(id(call))
        if call.state is _State.QUEUED and not self._has_engine_to_try(call):
            call.error = error
            self._end(call, now)
        self._dispatch()
        self._raise_if_failed(call)

    def _has_engine_to_try(self, call: _Call) -> bool:
        return any(e.alive and e.index not in call.failed_on for e in self._engines)

    def _declare_dead(self, index: int) -> None:
        engine = self._engines[index]
        engine.dead = True
        engine.suspected_by.clear()
        self.table.engine_lost(index)

    def _forgive_engines(self, call: _Call) -> None:
        """A call that failed everywhere, or was dropped, proves nothing about engines."""
        for engine in self._engines:
            engine.suspected_by.discard(id(call))

    # ----- the decision -----

    def _dispatch(self) -> None:
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
            kept = call.state is _State.RUNNING and call.epoch == epoch
            if not kept and call.attempt_scope is not None:
                call.attempt_scope.cancel()  # placed elsewhere, or waiting again

    def _take_back_fresh(self, now: float) -> dict[_Call, int]:
        """Return to the queue the calls started at `now` that have produced nothing."""
        fresh: dict[_Call, int] = {}
        for engine in self._engines:
            for call in [c for c in engine.running if c.is_fresh(now)]:
                fresh[call] = call.epoch
                call.taken_back_from = engine.index
                del engine.running[call]
                engine.tally.attempts -= 1
                call.state, call.engine, call.attempt_started_s = _State.QUEUED, None, None
                call.queued_since_s = now  # its wait was banked when it started
                call.turn = anyio.Event()
                self._queue.push(call, call.position())
        return fresh

    def _fill_engines(self, now: float) -> None:
        skipped: set[_Call] = set()
        while True:
            call = next((c for c in self._queue.in_order() if c not in skipped), None)
            if call is None:
                return
            candidates = self._candidates(call)
            if not candidates:
                if all(engine.dead for engine in self._engines):
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

    def _candidates(self, call: _Call) -> list[int]:
        context = self.table.get(call.program_id).context_engine
        route = replace(call.route, context_engine=context)
        loads = [engine.load() for engine in self._engines]
        return [i for i in self.balancer.candidates(route, loads) if i not in call.failed_on]

    def _victim(self, call: _Call, candidates: list[int]) -> _Call | None:
        """The worst running call on the candidate engines that `call` outranks."""
        running = [
            c for i in candidates for c in self._engines[i].running if self._outranks(call, c)
        ]
        return max(running, key=_Call.position) if running else None

    def _outranks(self, call: _Call, running: _Call) -> bool:
        return self.policy.preemptive and (call.level, call.rank) < (running.level, running.rank)

    def _could_run_anywhere(self, call: _Call) -> bool:
        return any(
            engine.has_free_slot or any(self._outranks(call, running) for running in engine.running)
            for engine in self._engines
            if engine.alive
        )

    def _start(self, call: _Call, engine: _Engine, now: float) -> None:
        self._queue.remove(call)
        self._account_wait(call, now)
        # Taken back and placed on the same engine again: the attempt goes on untouched.
        if call.taken_back_from != engine.index:
            call.epoch += 1
            call.attempt_chunks = 0
        call.taken_back_from = None
        call.state = _State.RUNNING
        call.engine = engine.index
        call.attempt_started_s = now
        engine.running[call] = None
        engine.tally.attempts += 1
        call.turn.set()

    def _preempt(self, call: _Call, now: float) -> None:
        assert call.engine is not None
        self._engines[call.engine].tally.preemptions += 1
        self._preemptions += 1
        self._stop_attempt(call, now)
        call.state = _State.QUEUED
        call.turn = anyio.Event()
        call.queued_since_s = now
        # It keeps its place in its level: it was there before the call that displaced it.
        self._queue.push(call, call.position())

    def _stop_attempt(self, call: _Call, now: float) -> None:
        """Free the call's slot and bank its service; abort the stream if it is waiting
        for a chunk (otherwise it stops at its next check)."""
        if call.engine is not None:
            self._engines[call.engine].running.pop(call, None)
        call.service_s = call.service_at(now)
        call.attempt_started_s = None
        call.engine = None
        if call.attempt_scope is not None:
            call.attempt_scope.cancel()

    def _account_wait(self, call: _Call, now: float) -> None:
        waited = now - call.queued_since_s
        call.waiting_s += waited
        self.table.add_waiting(call.program_id, waited)

    def _promote_starving(self, now: float) -> None:
        # Once per instant is enough: waiting only grows with time.
        if self.policy.starvation == "off" or now == self._last_starvation_scan_s:
            return
        self._last_starvation_scan_s = now

        def measure(call: _Call) -> tuple[float, float]:
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


def _caps(backends: Sequence[Backend], max_in_flight: int | Sequence[int] | None) -> list[int]:
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
    return [min(cap, backend.capacity()) for cap, backend in zip(caps, backends, strict=True)]


def _closing_chunk(last: Chunk | None) -> Chunk:
    if last is None:
        return Chunk(text="", finished=True, finish_reason="stop")
    return replace(last, text="", finished=True, finish_reason=last.finish_reason or "stop")


async def _drain(stream: AsyncGenerator[Chunk, None]) -> None:
    """Let a finished stream end by itself, so the engine sees a completed request, not
    an abort. Anything after the finished chunk is ignored."""
    with suppress(StopAsyncIteration, BackendError):
        await anext(stream)


def _tally_prompt(tally: EngineTally, last: Chunk | None) -> None:
    if last is not None:
        tally.prompt_tokens += last.prompt_tokens
        tally.cached_prompt_tokens += last.cached_prompt_tokens
