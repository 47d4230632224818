"""The waiting queue, as a pluggable policy (vLLM's `RequestQueue` idea)."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Protocol

from taskloom.backends.sim.config import QueuePolicy
from taskloom.backends.sim.request import SimRequest


class WaitingQueue(Protocol):
    def add(self, request: SimRequest) -> None: ...

    def readmit(self, request: SimRequest) -> None:
        """Put back a preempted request."""
        ...

    def peek(self) -> SimRequest: ...

    def pop(self) -> SimRequest: ...

    def remove(self, request: SimRequest) -> bool: ...

    def __len__(self) -> int: ...


class FcfsQueue:
    """Arrival order; a preempted request goes back to the front."""

    def __init__(self) -> None:
        self._queue: deque[SimRequest] = deque()

    def add(self, request: SimRequest) -> None:
        self._queue.append(request)

    def readmit(self, request: SimRequest) -> None:
        self._queue.appendleft(request)

    def peek(self) -> SimRequest:
        return self._queue[0]

    def pop(self) -> SimRequest:
        return self._queue.popleft()

    def remove(self, request: SimRequest) -> bool:
        if request not in self._queue:
            return False
        self._queue.remove(request)
        return True

    def __len__(self) -> int:
        return len(self._queue)


class PriorityQueue:
    """Lowest (priority, arrival) first; a preempted request keeps its place by both."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int, SimRequest]] = []

    def add(self, request: SimRequest) -> None:
        # arrival_seq is unique, so the heap never compares two requests.
        heapq.heappush(self._heap, (request.priority, request.arrival_seq, request))

    def readmit(self, request: SimRequest) -> None:
        self.add(request)

    def peek(self) -> SimRequest:
        return self._heap[0][2]

    def pop(self) -> SimRequest:
        return heapq.heappop(self._heap)[2]

    def remove(self, request: SimRequest) -> bool:
        kept = [entry for entry in self._heap if entry[2] is not request]
        if len(kept) == len(self._heap):
            return False
        self._heap = kept
        heapq.heapify(self._heap)
        return True

    def __len__(self) -> int:
        return len(self._heap)


def make_waiting_queue(policy: QueuePolicy) -> WaitingQueue:
    return PriorityQueue() if policy == "priority" else FcfsQueue()
