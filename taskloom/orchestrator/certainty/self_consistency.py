"""Streaming self-consistency: sample, vote as samples finish, stop when settled.

Samples are launched as the lease grants slots and consumed in the order they finish.
After each one the stopping rule looks at the tally; when it fires (or the lease calls
the query hopeless) the task group is cancelled, which closes every sample still
streaming, and closing a stream aborts its request in the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream

from taskloom.orchestrator.certainty.allocation import SampleLease
from taskloom.orchestrator.certainty.measures import certaindex
from taskloom.orchestrator.certainty.rules import StoppingRule
from taskloom.orchestrator.certainty.tally import VoteTally

StopReason = Literal["rule", "hopeless", "exhausted"]


@dataclass(frozen=True)
class Sample:
    """One finished sample: its text and the answer read from it (None: unreadable)."""

    index: int
    text: str
    answer: str | None


SampleDrawer = Callable[[int], Awaitable[Sample]]
"""Draws sample `index`; cancelling the call must abort the sample in the engine."""


@dataclass(frozen=True)
class VoteOutcome:
    tally: VoteTally
    certainty: float
    stop_reason: StopReason
    cap: int

    @property
    def answer(self) -> str | None:
        return self.tally.leader

    @property
    def samples_used(self) -> int:
        return self.tally.samples

    @property
    def stopped_early(self) -> bool:
        return self.samples_used < self.cap

    def as_output(self) -> dict[str, Any]:
        """The node's output."""
        return {
            "answer": self.answer,
            "votes": self.tally.votes,
            "samples_used": self.samples_used,
            "certainty": round(self.certainty, 4),
            "stopped_early": self.stopped_early,
            "stop_reason": self.stop_reason,
        }


async def vote(
    draw: SampleDrawer, *, cap: int, rule: StoppingRule, lease: SampleLease
) -> VoteOutcome:
    """Draw up to `cap` samples through `lease` and vote until `rule` is satisfied.

    A finished sample keeps its slot until the vote has looked at it, so no new sample
    is launched on a slot whose result may already settle the vote. Samples that
    finish together are judged together.
    """
    if cap < 1:
        raise ValueError(f"self-consistency needs at least one sample, got {cap}")
    send, receive = anyio.create_memory_object_stream[Sample](cap)
    tally, history = VoteTally(), list[float]()
    reason: StopReason = "exhausted"
    judged_slots = 0  # slots of finished samples, held until judged

    async def one(index: int) -> None:
        nonlocal judged_slots
        delivered = False
        try:
            send.send_nowait(await draw(index))
            delivered, judged_slots = True, judged_slots + 1
        finally:
            if not delivered:
                lease.release()

    async def launch_all(group: TaskGroup) -> None:
        for index in range(cap):
            await lease.acquire()
            group.start_soon(one, index)

    async with anyio.create_task_group() as group, receive:
        group.start_soon(launch_all, group)
        while True:
            for sample in await _finished_now(receive):
                tally = tally.with_answer(sample.answer)
                history.append(certaindex(tally))
            if rule.should_stop(tally):
                reason = "rule"
                break
            if tally.samples >= cap:
                break
            if not lease.report(tally, history[-1]):
                reason = "hopeless"
                break
            judged_slots = _release(lease, judged_slots)
        # Whatever is still running is not needed: cancelling aborts it in the engine.
        group.cancel_scope.cancel()
    _release(lease, judged_slots)
    return VoteOutcome(tally, history[-1], reason, cap)


async def _finished_now(receive: MemoryObjectReceiveStream[Sample]) -> list[Sample]:
    """The next finished sample and every other one already waiting."""
    batch = [await receive.receive()]
    while True:
        try:
            batch.append(receive.receive_nowait())
        except anyio.WouldBlock:
            return batch


def _release(lease: SampleLease, slots: int) -> int:
    for _ in range(slots):
        lease.release()
    return 0
