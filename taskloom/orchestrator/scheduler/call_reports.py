"""How each call went through a scheduler, told to whoever asked to hear of that call.

A tracer asks for the calls it traces, by call id, before it submits them; when the
call ends (finished, failed, aborted or cancelled), the scheduler hands the listener a
frozen `CallReport` read from the call's own record. Nobody watching costs one test
of an empty dict per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskloom.orchestrator.scheduler.records import ScheduledCall


@dataclass(frozen=True)
class CallReport:
    """One call's time in the scheduler and on its engines, all attempts together."""

    call_id: str
    queued_s: float
    service_s: float
    level: int  # its queue level when it ended (demotions move it down)
    priority: int  # what the engine was last given as the call's priority
    preemptions: int
    engine: int | None  # the engine it was on when it ended; None if it ended waiting
    engine_name: str | None


CallListener = Callable[[CallReport], None]


class CallWatch:
    """The listeners of one scheduler's calls, by call id; each hears once."""

    def __init__(self, engine_names: Sequence[str]) -> None:
        self._engine_names = list(engine_names)
        self._listeners: dict[str, CallListener] = {}

    def watch(self, call_id: str, listener: CallListener) -> None:
        self._listeners[call_id] = listener

    def unwatch(self, call_id: str) -> None:
        self._listeners.pop(call_id, None)

    def ended(self, call: ScheduledCall, now_s: float, multi_level: bool) -> None:
        """`call` is ending at `now_s`; read before its attempt is stopped, so the
        engine it ran on is still known."""
        if not self._listeners:
            return
        listener = self._listeners.pop(call.request.call_id, None)
        if listener is None:
            return
        engine = call.engine
        listener(
            CallReport(
                call_id=call.request.call_id,
                queued_s=call.waiting_at(now_s),
                service_s=call.service_at(now_s),
                level=call.level,
                priority=call.level if multi_level else int(call.rank),
                preemptions=call.preemptions,
                engine=engine,
                engine_name=None if engine is None else self._engine_names[engine],
            )
        )
