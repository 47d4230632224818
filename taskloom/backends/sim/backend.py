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

Only anyio is used, so the same code runs on asyncio (real time) and trio (virtual time).
"""

from __future__ import annotations

import math
import sys
from collections.abc import AsyncGenerator, Callable
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from types import TracebackType

import anyio
import anyio.lowlevel
from anyio.abc import TaskGroup, TaskStatus
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.backends.sim.config import SimEngineConfig
from taskloom.backends.sim.cost import StepCostModel
from taskloom.backends.sim.engine import SimEngine
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
    sim_request: SimRequest | None = None


class SimBackend:
    """A discrete-event model of a vLLM-like engine.

    Start it with `async with SimBackend(...) as backend:` or, inside a task group you
    own, `await backend.start(task_group)`; `close()` stops it. `output_tokens(request)`
    sets each answer's length (default: `sampling.max_tokens`), so a workload can replay
    the output lengths of a trace.
    """

    name = "sim"

    def __init__(
        self,
        config: SimEngineConfig | None = None,
        cost: StepCostModel = H100_LLAMA3_8B,
        *,
        output_tokens: OutputLength = max_tokens_output,
    ) -> None:
        self.config = config if config is not None else SimEngineConfig()
        self.cost = cost
        self._engine = SimEngine(self.config, cost)
        self._output_tokens = output_tokens
        self._arrivals: list[_Call] = []
        self._in_engine: dict[int, _Call] = {}
        self._work_arrived = anyio.Event()
        self._loop_scope: anyio.CancelScope | None = None
        self._exit_stack: AsyncExitStack | None = None
        self._closed = False
        self._settle_ties = False
        self._started_at: float | None = None

    def capacity(self) -> int:
        return self.config.max_num_seqs

    def stats(self) -> SimStats:
        return self._engine.stats()

    def busy_fraction(self) -> float:
        """Share of the (virtual) time since the start that the engine spent in steps."""
        if self._started_at is None:
            return 0.0
        return self.stats().busy_fraction(anyio.current_time() - self._started_at)

    @property
    def engine(self) -> SimEngine:
        """The engine state, for tests and reports; do not mutate it."""
        return self._engine

    async def start(self, task_group: TaskGroup) -> None:
        """Run the engine loop in `task_group` until `close()`."""
        if self._closed or self._loop_scope is not None:
            raise BackendError("a SimBackend starts once; make a new one")
        await task_group.start(self._run)

    async def __aenter__(self) -> SimBackend:
        async with AsyncExitStack() as stack:
            task_group = await stack.enter_async_context(anyio.create_task_group())
            await self.start(task_group)
            self._exit_stack = stack.pop_all()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
        assert self._exit_stack is not None
        # The loop task has been cancelled, so its task group closes cleanly. Closing it
        # without the body's exception keeps that exception unwrapped (no group).
        await self._exit_stack.aclose()

    async def close(self) -> None:
        """Stop the engine; requests still streaming fail with `BackendError`."""
        self._closed = True
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
        order = (anyio.current_time(), request.program_id, request.thread_id, request.call_id)
        reason = "length" if output_tokens >= request.sampling.max_tokens else "stop"
        call = _Call(order, tokens, output_tokens, request.priority, reason, send)
        self._arrivals.append(call)
        self._work_arrived.set()
        return call, receive

    def _require_running(self) -> None:
        if self._closed:
            raise BackendError("the simulated engine is closed")
        if self._loop_scope is None:
            raise BackendError(
                "SimBackend is not started: use `async with SimBackend(...) as backend` "
                "or `await backend.start(task_group)`"
            )

    def _forget(self, call: _Call) -> None:
        call.stream.close()
        if call.sim_request is None:
            if call in self._arrivals:
                self._arrivals.remove(call)
            return
        self._in_engine.pop(call.sim_request.request_id, None)
        self._engine.abort(call.sim_request)

    async def _run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        try:
            with anyio.CancelScope() as scope:
                self._loop_scope = scope
                self._settle_ties = _running_on_trio()
                self._started_at = anyio.current_time()
                task_status.started()
                while True:
                    await self._wait_for_work()
                    await self._run_step()
        finally:
            self._closed = True
            self._fail_all("the simulated engine stopped")

    async def _wait_for_work(self) -> None:
        while not (self._engine.has_work or self._arrivals):
            self._work_arrived = anyio.Event()
            await self._work_arrived.wait()

    async def _run_step(self) -> None:
        await self._settle()
        self._admit_arrivals()
        plan = self._engine.schedule()
        if plan.is_empty:
            return  # only after a request preempted itself; the next schedule progresses
        await anyio.sleep(plan.seconds)
        await self._settle()
        for sim_request in self._engine.complete(plan):
            call = self._in_engine.get(sim_request.request_id)
            if call is not None:
                self._publish(call)

    async def _settle(self) -> None:
        """Let every task runnable at this instant act first (see the module doc)."""
        if self._settle_ties:
            await anyio.wait_all_tasks_blocked()
        else:
            await anyio.lowlevel.checkpoint()

    def _admit_arrivals(self) -> None:
        arrivals, self._arrivals = self._arrivals, []
        for call in sorted(arrivals, key=lambda c: c.arrival_order):
            call.sim_request = self._engine.submit(call.tokens, call.output_tokens, call.priority)
            self._in_engine[call.sim_request.request_id] = call

    def _publish(self, call: _Call) -> None:
        assert call.sim_request is not None
        finished = call.sim_request.status is RequestStatus.FINISHED
        chunk = _chunk(call.sim_request, call.finish_reason if finished else None)
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


def _chunk(sim_request: SimRequest, finish_reason: str | None) -> Chunk:
    return Chunk(
        text=FILLER_TEXT,
        prompt_tokens=sim_request.num_prompt_tokens,
        generated_tokens=sim_request.num_output_tokens,
        cached_prompt_tokens=sim_request.cached_prompt_tokens or 0,
        finished=finish_reason is not None,
        finish_reason=finish_reason,
    )
