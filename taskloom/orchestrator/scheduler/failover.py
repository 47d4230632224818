"""Which engines are in service, judged from the calls that failed on them.

With several engines, an engine that fails a call is suspected and gets no new calls
while that call moves, with its text so far, to another engine. If the call then works
elsewhere, the engine that failed it is declared dead for good; if it fails everywhere,
or is dropped, it proves nothing about the engines, and they are forgiven.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskloom.orchestrator.scheduler.program_table import ProgramTable
from taskloom.orchestrator.scheduler.records import EngineSlots, ScheduledCall


class Failover:
    """Engine health for one scheduler's engines."""

    def __init__(self, engines: Sequence[EngineSlots], table: ProgramTable) -> None:
        self._engines = engines
        self._table = table

    def call_failed(self, call: ScheduledCall, engine: EngineSlots) -> None:
        engine.tally.failures += 1
        call.failed_on.add(engine.index)
        if len(self._engines) > 1:
            engine.suspected_by.add(id(call))

    def has_engine_to_try(self, call: ScheduledCall) -> bool:
        return any(e.alive and e.index not in call.failed_on for e in self._engines)

    def all_dead(self) -> bool:
        return all(engine.dead for engine in self._engines)

    def call_succeeded(self, call: ScheduledCall) -> None:
        """It failed there and worked here: those engines died."""
        for index in call.failed_on:
            self._declare_dead(index)
        call.failed_on.clear()

    def forgive(self, call: ScheduledCall) -> None:
        """A call that failed everywhere, or was dropped, proves nothing about engines."""
        for engine in self._engines:
            engine.suspected_by.discard(id(call))

    def _declare_dead(self, index: int) -> None:
        engine = self._engines[index]
        engine.dead = True
        engine.suspected_by.clear()
        self._table.engine_lost(index)
