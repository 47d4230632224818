"""`SimBackend`: the simulated engine behind the `Backend` seam, on virtual time.

One loop task runs the engine: it schedules a step, sleeps for the step's modelled
duration, applies it, and pushes a chunk to every request that got a token. Each
`generate()` call reads its own unbounded memory stream, so a slow consumer never stalls
the engine, and any number of calls can run from any tasks. When there is no work the loop
waits on an event, never on a timer, so under trio's `MockClock(autojump_threshold=0)`
time jumps straight to the next arrival.

Determinism: trio runs the tasks woken at one instant in a random order. So on trio the
loop lets every other task run until blocked (`wait_all_tasks_blocked`, which does not
advance a MockClock) before it schedules a step and before it applies one, and it queues
the requests that arrived since the last step by (arrival time, program, thread, call id).
Requests arriving or aborted at the instant a step ends therefore always count the same
way. On asyncio (real time) the loop only yields once; there is no determinism to keep.

Streaming: by default every token is a chunk. With `stream_interval=n` (vLLM's setting of
that name) a request publishes its first token at once, then a chunk whenever n more are
ready, and its last token at once; a chunk carries the text of the tokens since the one
before. A consumer that acts on partial answers (a scheduler that demotes or preempts by
what it has seen, a planner reading a plan as it streams) then acts later, so keep 1 for
those. Where no consumer needs the tokens in between, it saves waking the consumer for
each one, and it lets the loop fast-forward: when the next steps are certain to be
decode-only steps of the same running set (no prompt chunk, no admission, no preemption,
no finish, no chunk due before the last of them; see `SimEngine.decode_horizon`), it
sleeps once, to the end of the last of them, instead of once per step. An arrival or
abort wakes it early; it then applies the steps that ended before that instant, lets the
step in flight run to its end, and goes on step by step: exactly what the step-by-step
loop would have done, since arrivals join only at step boundaries and an abort lands
inside the step it falls in. The numbers (times, tokens, counters) are the same as step
by step, bit for bit, under a `MockClock`: a fast-forward only starts at time t for steps
that end by 2t, where every clock jump lands exactly on its deadline.

Only anyio is used, so the same code runs on asyncio (real time) and trio (virtual time).
"""

from __future__ import annotations

import bisect
import math
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass

import anyio
import anyio.lowlevel
from anyio.abc import TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.backends.sim.config import SimEngineConfig
from taskloom.backends.sim.cost import StepCostModel
from taskloom.backends.sim.engine import SimEngine, StepPlan
from taskloom.backends.sim.profiles import H100_LLAMA3_8B
from taskloom.backends.sim.request import RequestStatus, SimRequest
from taskloom.backends.sim.stats import SimStats
from taskloom.backends.sim.tokens import FILLER_TEXT, request_tokens
from taskloom.errors import BackendError

OutputLength = Callable[[GenerateRequest], int]
"""How many tokens the simulated model answers a request with."""

_Item = Chunk | BackendError


def max_tokens_output(request: GenerateRequest) -> int:
    """The default output length: every answer runs to `max_tokens`."""
    return request.sampling.max_tokens


@dataclass(eq=False)
class _Call:
    """A `generate()` call: queued as an arrival first, then a request in the engine."""

    arrival_order: tuple[float, str, str, str]
    tokens: list[int]
    output_tokens: int
    priority: int
    finish_reason: str
    stream: MemoryObjectSendStream[_Item]
    program_id: str = ""
    keep_warm_s: float | None = None
    sim_request: SimRequest | None = None
    published_tokens: int = 0


class SimBackend(ManagedBackend):
    """A discrete-event model of a vLLM-like engine.

    Start it with `async with SimBackend(...) as backend:` (or `open_backend("sim",
    ...)`), which runs its loop in a task group of its own; `close()` stops the loop and
    fails the requests still streaming. `output_tokens(request)`
    sets each answer's length (default: `sampling.max_tokens`), so a workload can replay
    the output lengths of a trace. `stream_interval` (default 1, a chunk per token) sets
    how many tokens a chunk gathers (the first token and the last always come at once).
    `fast_forward` (default on) lets the loop sleep over runs of decode-only steps
    when the interval allows; it never changes a number, only the wall time. `speed`
    (default 1) runs the engine that many times faster than the clock it runs on: a
    step of s modelled seconds takes s / speed of them (`taskloom serve --sim-speed`).
    A request's `keep_warm_s` hint is honoured: its KV stays pinned for that long after
    it finishes (see `warm_pins`); real engines have no such API and ignore it.
    """

    name = "sim"

    def __init__(
        self,
        config: SimEngineConfig | None = None,
        cost: StepCostModel = H100_LLAMA3_8B,
        *,
        output_tokens: OutputLength = max_tokens_output,
        stream_interval: int = 1,
        fast_forward: bool = True,
        speed: float = 1.0,
    ) -> None:
        if stream_interval < 1:
            raise ValueError(f"stream_interval must be at least 1, got {stream_interval}")
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError(f"speed must be a positive number, got {speed}")
        self.config = config if config is not None else SimEngineConfig()
        self.cost = cost
        self.stream_interval = stream_interval
        self.fast_forward = fast_forward
        self.speed = speed
        self._engine = SimEngine(self.config, cost)
        self._output_tokens = output_tokens
        self._arrivals: list[_Call] = []
        self._in_engine: dict[int, _Call] = {}
        self._work_arrived = anyio.Event()
        self._loop_scope: anyio.CancelScope | None = None
        self._loop_stopped = False
        self._settle_ties = False
        self._started_at: float | None = None
        # Set while a fast-forward is under way: the engine state then lags behind the
        # clock, so aborts wait here until it has caught up.
        self._deferred_aborts: list[SimRequest] | None = None

    def capacity(self) -> int:
        return self.config.max_num_seqs

    def kv_capacity_tokens(self) -> int:
        """Tokens its KV cache holds: what a scheduler that keeps programs' contexts
        resident budgets against (`scheduler/resident_sessions.py`)."""
        return self.config.kv_capacity_tokens

    def stats(self) -> SimStats:
        return self._engine.stats()

    def busy_fraction(self) -> float:
        """Share of the (virtual) time since the start that the engine spent in steps."""
        if self._started_at is None:
            return 0.0
        return self.stats().busy_fraction(self._now() - self._started_at)

    @property
    def engine(self) -> SimEngine:
        """The engine state, for tests and reports; do not mutate it."""
        return self._engine

    async def _open(self, context: AsyncExitStack) -> None:
        task_group = await context.enter_async_context(anyio.create_task_group())
        await task_group.start(self._run)

    async def _release(self) -> None:
        """Stop the engine; requests still streaming fail with `BackendError`."""
        if self._loop_scope is not None:
            self._loop_scope.cancel()
        self._fail_all("the simulated engine was closed")
        await anyio.lowlevel.checkpoint()

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        call, chunks = self._arrive(request)
        try:
            async with chunks:
                async for item in chunks:
                    if isinstance(item, BackendError):
                        raise item
                    yield item
        finally:
            # Runs on normal end, error and cancellation alike; aborting is a no-op for
            # a finished request and frees the blocks of an unfinished one.
            self._forget(call)

    def _arrive(self, request: GenerateRequest) -> tuple[_Call, MemoryObjectReceiveStream[_Item]]:
        self._require_running()
        tokens = request_tokens(request)
        output_tokens = max(1, self._output_tokens(request))
        self._engine.check_fits(len(tokens), output_tokens)
        send, receive = anyio.create_memory_object_stream[_Item](max_buffer_size=math.inf)
        order = (self._now(), request.program_id, request.thread_id, request.call_id)
        reason = "length" if output_tokens >= request.sampling.max_tokens else "stop"
        call = _Call(order, tokens, output_tokens, request.priority, reason, send,
                     request.program_id, request.keep_warm_s)
        self._arrivals.append(call)
        self._work_arrived.set()
        return call, receive

    def _require_running(self) -> None:
        self._require_open()
        if self._loop_stopped:
            raise BackendError("the simulated engine stopped; open a new one")

    def _forget(self, call: _Call) -> None:
        call.stream.close()
        if call.sim_request is None:
            if call in self._arrivals:
                self._arrivals.remove(call)
            return
        self._in_engine.pop(call.sim_request.request_id, None)
        active = call.sim_request.status in (RequestStatus.RUNNING, RequestStatus.WAITING)
        if active and self._deferred_aborts is not None:
            self._deferred_aborts.append(call.sim_request)
            self._work_arrived.set()  # wake the loop from its fast-forward
            return
        self._engine.abort(call.sim_request)  # a no-op for a finished request

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._loop_scope = scope
                self._settle_ties = _running_on_trio()
                self._started_at = self._now()
                task_status.started()
                while True:
                    await self._wait_for_work()
                    await self._run_step()
        finally:
            self._loop_stopped = True
            self._fail_all("the simulated engine stopped")

    async def _wait_for_work(self) -> None:
        while not (self._engine.has_work or self._arrivals):
            self._work_arrived = anyio.Event()
            await self._work_arrived.wait()

    async def _run_step(self) -> None:
        await self._settle()
        self._admit_arrivals()
        seconds, ends = self._decode_run()
        if len(seconds) > 1:
            await self._fast_forward(seconds, ends)
            return
        plan = self._engine.schedule(self._now())
        if plan.is_empty:
            return  # only after a request preempted itself; the next schedule progresses
        await anyio.sleep(plan.seconds / self.speed)
        await self._settle()
        self._complete(plan)

    def _complete(self, plan: StepPlan) -> None:
        interval = self.stream_interval
        calls = self._in_engine.get
        finished = RequestStatus.FINISHED
        for sim_request in self._engine.complete(plan, self._now()):
            call = calls(sim_request.request_id)
            if call is None:
                continue
            # The test of `_publish`, inlined: most tokens of a coarse stream are not due.
            published = call.published_tokens
            due = sim_request.num_output_tokens - published >= interval
            if due or not published or sim_request.status is finished:
                self._publish(call)

    def _decode_run(self) -> tuple[list[float], list[float]]:
        """The times and end times of the decode-only steps ahead that may be slept over
        in one go; none when fast-forwarding is off."""
        if not self.fast_forward or self.stream_interval == 1:
            return [], []
        steps = self._engine.decode_horizon(sys.maxsize)
        if steps > 1:
            steps = min(steps, self._steps_to_next_chunk())
        if steps < 2:
            return [], []
        seconds = self._engine.decode_step_seconds(steps)
        # End times summed as the step-by-step loop's sleeps would sum them, up to twice
        # the start time (see the module doc).
        start = end = self._now()
        ends: list[float] = []
        for step_seconds in seconds:
            end += step_seconds
            if end > 2 * start:
                break
            ends.append(end)
        return seconds[: len(ends)], ends

    def _steps_to_next_chunk(self) -> int:
        """Steps until some running request has a chunk due before it finishes."""
        limit = sys.maxsize
        for sim_request in self._engine.running:
            call = self._in_engine.get(sim_request.request_id)
            if call is not None:
                due = call.published_tokens + self.stream_interval - sim_request.num_output_tokens
                limit = min(limit, due)
        return limit

    async def _fast_forward(self, seconds: list[float], ends: list[float]) -> None:
        """Run the decode-only steps timed `seconds` with one sleep, waking early (and
        then stopping after the step in flight) if a request arrives or is aborted."""
        aborts: list[SimRequest] = []
        self._deferred_aborts = aborts
        try:
            self._work_arrived = anyio.Event()
            with anyio.move_on_at(self._clock_at(ends[-1])):
                await self._work_arrived.wait()
            await self._settle()
            # Steps that ended before now are done; the one that ends at or after now was
            # in flight when the arrival or abort came. (On a real clock now may be past
            # the last end; the last step still goes the normal way, for its chunks.)
            in_flight = min(bisect.bisect_left(ends, self._now()), len(ends) - 1)
            self._engine.complete_decode_steps(seconds[:in_flight])
            # (Scheduled at the wake-up, inside the step in flight: the time only tells
            # expired pins apart when KV is short, which a decode run rules out.)
            plan = self._engine.schedule(self._now())
        finally:
            self._deferred_aborts = None
        if plan.seconds != seconds[in_flight]:
            raise RuntimeError("a fast-forwarded step differs from the one the engine ran")
        for sim_request in aborts:
            self._engine.abort(sim_request)
        if ends[in_flight] > self._now():
            # A deadline, not a duration: the clock lands on the very sum computed above.
            with anyio.move_on_at(self._clock_at(ends[in_flight])):
                await anyio.sleep_forever()
            await self._settle()
        self._complete(plan)

    def _now(self) -> float:
        """The engine's time: the clock's, times `speed` (exactly the clock's at 1)."""
        return anyio.current_time() * self.speed

    def _clock_at(self, engine_time: float) -> float:
        """The clock's time when the engine's reaches `engine_time`."""
        return engine_time / self.speed

    async def _settle(self) -> None:
        """Let every task runnable at this instant act first (see the module doc)."""
        if self._settle_ties:
            await anyio.wait_all_tasks_blocked()
        else:
            await anyio.lowlevel.checkpoint()

    def _admit_arrivals(self) -> None:
        arrivals, self._arrivals = self._arrivals, []
        for call in sorted(arrivals, key=lambda c: c.arrival_order):
            call.sim_request = self._engine.submit(
                call.tokens, call.output_tokens, call.priority,
                program_id=call.program_id, keep_warm_s=call.keep_warm_s)
            self._in_engine[call.sim_request.request_id] = call

    def _publish(self, call: _Call) -> None:
        sim_request = call.sim_request
        assert sim_request is not None
        finished = sim_request.status is RequestStatus.FINISHED
        new_tokens = sim_request.num_output_tokens - call.published_tokens
        if not finished and call.published_tokens and new_tokens < self.stream_interval:
            return  # not due yet: the next chunk will carry this token's text
        chunk = _chunk(sim_request, new_tokens, call.finish_reason if finished else None)
        call.published_tokens = sim_request.num_output_tokens
        try:
            call.stream.send_nowait(chunk)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            self._forget(call)  # its reader is gone: abort it
            return
        if finished:
            self._forget(call)

    def _fail_all(self, reason: str) -> None:
        calls = [*self._arrivals, *self._in_engine.values()]
        self._arrivals, self._in_engine = [], {}
        for call in calls:
            with suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
                call.stream.send_nowait(BackendError(reason))
            call.stream.close()


def _running_on_trio() -> bool:
    # Imported only if the program already did: trio is an optional dependency.
    trio = sys.modules.get("trio")
    return trio is not None and bool(trio.lowlevel.in_trio_task())


def _chunk(sim_request: SimRequest, new_tokens: int, finish_reason: str | None) -> Chunk:
    return Chunk(
        text=FILLER_TEXT * new_tokens,
        prompt_tokens=sim_request.num_prompt_tokens,
        generated_tokens=sim_request.num_output_tokens,
        cached_prompt_tokens=sim_request.cached_prompt_tokens or 0,
        finished=finish_reason is not None,
        finish_reason=finish_reason,
    )
