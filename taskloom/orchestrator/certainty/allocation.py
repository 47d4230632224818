"""Who may launch the next sample: gang admission and certainty-driven reallocation.

A self-consistency query holds a `SampleLease` while it samples. Before each sample it
`acquire`s a slot, and after each finished sample it `report`s its tally; the lease
answers whether to go on. Two allocators:

- `FixedWidthAllocator`: each query on its own, at most `width` samples in flight. What a
  node gets when its scheduler offers nothing better.
- `CertaintyAllocator`: one pool of sample slots shared by every query of a runtime.
  - Gang admission: a query starts only when its first `gang` samples (the samples its
    stopping rule needs before it can fire) can all start at once.
  - When the pool is not crowded, every admitted query may run all its samples at once.
  - When it is crowded, certainty sets each query's share: after its gang, a query
    keeps `crowded_width` samples in flight, or one while its certainty is flat; its
    sample budget shrinks to `crowded_budget` of its cap. A query whose certainty
    still rises past that budget keeps sampling up to its cap; one whose certainty is
    flat there is hopeless: it stops and reports its low certainty. Confident queries
    stop by their rule; the slots they free go, in this order, to admitted queries
    with no sample in flight (so none stalls), to waiting gangs in arrival order, and
    then to admitted queries, oldest first, up to their width, keeping back the next
    waiting gang's slots. (Serving the admitted queries' widths before the waiting
    gangs, as a gang FIFO would, changed the 90th-percentile latency of
    benchmarks/early_stop_online.py by under 2% at 1.5 and 3 queries/s of 32 samples.)

The allocator only decides how many samples each query launches and when. The requests
still go through the runtime's scheduler, so any scheduling policy composes with it:
wrap that scheduler in `CertaintyAwareScheduler`, and nodes find the allocator there.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.orchestrator.certainty.tally import VoteTally
from taskloom.orchestrator.scheduler.base import Scheduler


@dataclass(frozen=True)
class QueryDemand:
    """What one self-consistency query asks of an allocator."""

    query_id: str
    cap: int  # the most samples it may take (the node's n)
    gang: int  # samples admitted together: the fewest its rule can decide on


class SampleLease(Protocol):
    async def acquire(self) -> None:
        """Wait for a slot for one more sample."""
        ...

    def release(self) -> None:
        """A sample ended (finished, failed or aborted): give its slot back."""
        ...

    def report(self, tally: VoteTally, certainty: float) -> bool:
        """Record a finished sample; False means stop: the query is hopeless."""
        ...


class SampleAllocator(Protocol):
    def admit(self, demand: QueryDemand) -> AbstractAsyncContextManager[SampleLease]:
        """Hold a lease for the query's lifetime; entering may wait for admission."""
        ...


# ---------------------------------------------------------------- hopeless queries


@dataclass(frozen=True)
class FlatCertainty:
    """When is a query hopeless? When, at its sample budget, its certainty is below
    `below` and has gained less than `min_gain` over the last `window` samples."""

    below: float = 0.5
    min_gain: float = 0.05
    window: int = 4

    def is_flat(self, history: Sequence[float]) -> bool:
        """Low, and barely gaining over the last `window` samples."""
        if len(history) <= self.window:
            return False
        gain = history[-1] - history[-1 - self.window]
        return history[-1] < self.below and gain < self.min_gain

    def is_hopeless(self, history: Sequence[float], budget: int) -> bool:
        return len(history) >= budget and self.is_flat(history)


# ---------------------------------------------------------------- fixed width


class _FixedWidthLease:
    def __init__(self, width: int) -> None:
        self._slots = anyio.Semaphore(width)

    async def acquire(self) -> None:
        await self._slots.acquire()

    def release(self) -> None:
        self._slots.release()

    def report(self, tally: VoteTally, certainty: float) -> bool:
        return True


@dataclass(frozen=True)
class FixedWidthAllocator:
    """Every query for itself: at most `width` samples in flight (None: all of them)."""

    width: int | None = None

    @asynccontextmanager
    async def admit(self, demand: QueryDemand) -> AsyncIterator[SampleLease]:
        yield _FixedWidthLease(self.width or demand.cap)


# ---------------------------------------------------------------- shared pool


@dataclass(eq=False)
class _Lease:
    """One admitted query's state inside a `CertaintyAllocator`."""

    pool: CertaintyAllocator
    demand: QueryDemand
    order: int
    in_flight: int = 0
    prepaid: int = 0  # slots granted at admission, not yet used by a sample
    history: list[float] = field(default_factory=list)
    waiting: anyio.Event | None = None

    async def acquire(self) -> None:
        if self.prepaid:
            self.prepaid -= 1
            self.in_flight += 1
            return
        self.waiting = anyio.Event()
        self.pool._dispatch()
        try:
            await self.waiting.wait()
        except BaseException:
            if self.waiting.is_set():  # granted just as we were cancelled: hand it back
                self.in_flight -= 1
                self.pool._free(1)
            raise
        finally:
            self.waiting = None

    def release(self) -> None:
        self.in_flight -= 1
        self.pool._free(1)

    def report(self, tally: VoteTally, certainty: float) -> bool:
        self.history.append(certainty)
        budget = self.pool.budget(self.demand, crowded=self.pool.crowded)
        return not self.pool.hopeless.is_hopeless(self.history, budget)

    def grant(self) -> None:
        assert self.waiting is not None
        self.in_flight += 1
        self.waiting.set()

    @property
    def wants_slot(self) -> bool:
        return self.waiting is not None and not self.waiting.is_set()


@dataclass(eq=False)
class _Admission:
    demand: QueryDemand
    order: int
    admitted: anyio.Event = field(default_factory=anyio.Event)


class CertaintyAllocator:
    """A pool of `slots` sample slots shared by all queries; see the module doc.

    `crowded_at`: the share of slots in use from which the pool counts as crowded (it
    also is whenever a query waits for admission). `crowded_width`: samples in flight
    per query after its first judgment while crowded. `crowded_budget`: the share of its
    cap a query may sample, while the pool is crowded, before flat certainty makes it
    hopeless.
    """

    def __init__(
        self,
        slots: int,
        *,
        crowded_at: float = 0.9,
        crowded_width: int = 4,
        crowded_budget: float = 0.5,
        hopeless: FlatCertainty | None = None,
    ) -> None:
        if slots < 1:
            raise ValueError(f"a CertaintyAllocator needs at least one slot, got {slots}")
        self.slots = slots
        self.crowded_at = crowded_at
        self.crowded_width = crowded_width
        self.crowded_budget = crowded_budget
        self.hopeless = hopeless or FlatCertainty()
        self.used = 0
        self._admissions: deque[_Admission] = deque()
        self._leases: list[_Lease] = []  # oldest first
        self._arrivals = 0

    @property
    def crowded(self) -> bool:
        """Queries wait for admission, or the pool is nearly full."""
        return bool(self._admissions) or self.used >= self.slots * self.crowded_at

    def budget(self, demand: QueryDemand, *, crowded: bool) -> int:
        """Samples after which flat certainty means hopeless."""
        if not crowded:
            return demand.cap
        return min(demand.cap, max(2 * demand.gang, math.ceil(demand.cap * self.crowded_budget)))

    def width(self, demand: QueryDemand, history: Sequence[float], *, crowded: bool) -> int:
        """Samples a query may have in flight now: all it wants while the pool is not
        crowded; when it is, its gang until the first judgment, then `crowded_width`,
        and one at a time while its certainty is flat."""
        if not crowded:
            return demand.cap
        if not history:
            return demand.gang
        if self.hopeless.is_flat(history):
            return 1
        return min(demand.gang, self.crowded_width)

    @asynccontextmanager
    async def admit(self, demand: QueryDemand) -> AsyncIterator[SampleLease]:
        gang = max(1, min(demand.gang, demand.cap, self.slots))
        admission = _Admission(QueryDemand(demand.query_id, demand.cap, gang), self._arrivals)
        self._arrivals += 1
        self._admissions.append(admission)
        self._dispatch()
        try:
            await admission.admitted.wait()
        except BaseException:
            if admission.admitted.is_set():
                self._free(gang)
            else:
                self._admissions.remove(admission)
                self._dispatch()
            raise
        lease = _Lease(self, admission.demand, admission.order, prepaid=gang)
        self._leases.append(lease)
        try:
            yield lease
        finally:
            self._leases.remove(lease)
            self._free(lease.prepaid)
            lease.prepaid = 0

    def _free(self, count: int) -> None:
        self.used -= count
        self._dispatch()

    def _dispatch(self) -> None:
        """Hand out free slots: stalled queries, then admissions, then wider sampling."""
        for lease in self._leases:
            if lease.wants_slot and lease.in_flight == 0 and self.used < self.slots:
                self._grant(lease)
        while self._admissions and self.slots - self.used >= self._admissions[0].demand.gang:
            admission = self._admissions.popleft()
            self.used += admission.demand.gang
            admission.admitted.set()
        reserve = self._admissions[0].demand.gang if self._admissions else 0
        for lease in self._leases:
            if self.slots - self.used <= reserve:
                return
            width = self.width(lease.demand, lease.history, crowded=self.crowded)
            if lease.wants_slot and lease.in_flight < width:
                self._grant(lease)

    def _grant(self, lease: _Lease) -> None:
        self.used += 1
        lease.grant()


# ---------------------------------------------------------------- the scheduler seam


class CertaintyAwareScheduler:
    """Any scheduler, plus a `CertaintyAllocator` that self-consistency nodes use.

    Requests pass through to `inner` unchanged, so this composes with every policy.
    """

    def __init__(self, inner: Scheduler, allocator: SampleAllocator) -> None:
        self.inner = inner
        self.sample_allocator = allocator

    def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        return self.inner.submit(request)

    async def close(self) -> None:
        await self.inner.close()


def allocator_of(scheduler: Any, default: SampleAllocator) -> SampleAllocator:
    """The allocator a scheduler offers (`sample_allocator`), else `default`."""
    found = getattr(scheduler, "sample_allocator", None)
    return found if found is not None else default
