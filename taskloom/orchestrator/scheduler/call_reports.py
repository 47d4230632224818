"""How each call went through a scheduler, told to whoever asked to hear of that call.

A tracer, or the ledger of the node that makes the call, asks for the calls it follows,
by call id, before it submits them; when the call ends (finished, failed, aborted or
cancelled), the scheduler hands each listener of that call the same frozen `CallReport`,
read from the call's own record. Nobody watching costs one test of an empty dict per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskloom.orchestrator.scheduler.records import ScheduledCall


@dataclass(frozen=True)
class CallReport:
    """One call's time in the scheduler and on its engines, all attempts together.

    Instants (`ended_at_s`, `preempted_at_s`, `resumed_at_s`) are read on the
    scheduler's clock; a listener that keeps them on another clock shifts them by
    where `ended_at_s` falls on its own, since it hears the report at that instant.
    """

    call_id: str
    queued_s: float
    service_s: float
    level: int  # its queue level when it ended (demotions move it down)
    priority: int  # what the engine was last given as the call's priority
    preemptions: int
    engine: int | None  # the engine it was on when it ended; None if it ended waiting
    engine_name: str | None
    ended_at_s: float = 0.0
    preempted_at_s: tuple[float, ...] = ()
    resumed_at_s: tuple[float, ...] = ()  # shorter by one if it ended while preempted


CallListener = Callable[[CallReport], None]


class CallWatch:
    """The listeners of one scheduler's calls, by call id; each hears once."""

    def __init__(self, engine_names: Sequence[str]) -> None:
        self._engine_names = list(engine_names)
        self._listeners: dict[str, list[CallListener]] = {}

    def watch(self, call_id: str, listener: CallListener) -> None:
        self._listeners.setdefault(call_id, []).append(listener)

    def unwatch(self, call_id: str, listener: CallListener) -> None:
        """Stop `listener` hearing of `call_id` (if it has not heard yet)."""
        listeners = self._listeners.get(call_id)
        if listeners is None or listener not in listeners:
            return
        listeners.remove(listener)
        if not listeners:
            del self._listeners[call_id]

    def ended(self, call: ScheduledCall, now_s: float, multi_level: bool) -> None:
        """`call` is ending at `now_s`; read before its attempt is stopped, so the
        engine it ran on is still known."""
        if not self._listeners:
            return
        listeners = self._listeners.pop(call.request.call_id, None)
        if listeners is None:
            return
        engine = call.engine
        report = CallReport(
            call_id=call.request.call_id,
            queued_s=call.waiting_at(now_s),
            service_s=call.service_at(now_s),
            level=call.level,
            priority=call.level if multi_level else int(call.rank),
            preemptions=call.preemptions,
            engine=engine,
            engine_name=None if engine is None else self._engine_names[engine],
            ended_at_s=now_s,
            preempted_at_s=tuple(call.preempted_at_s),
            resumed_at_s=tuple(call.resumed_at_s),
        )
        for listener in listeners:
            listener(report)


def call_watch_of(scheduler: object) -> CallWatch | None:
    """The call watch of `scheduler`, or of the scheduler it wraps (`inner`), if any."""
    while scheduler is not None:
        watch = getattr(scheduler, "call_watch", None)
        if isinstance(watch, CallWatch):
            return watch
        scheduler = getattr(scheduler, "inner", None)
    return None
