"""Which engines are in service, judged from the calls that failed on them and from
health checks.

With several engines, an engine that fails a call is suspected and gets no new calls
while that call moves, with its text so far, to another engine. If the call then works
elsewhere, the engine that failed it is declared dead; if it fails everywhere, or is
dropped, it proves nothing about the engines, and they are forgiven.

A failed health check declares an engine dead at once, and its running calls move too. A
passing one brings a dead or suspected engine back into service. Each call that moved
is recorded (`CallMove`) for its program's report.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from taskloom.orchestrator.engines_report import CallMove
from taskloom.orchestrator.scheduler.program_table import ProgramTable
from taskloom.orchestrator.scheduler.records import EngineSlots, ScheduledCall


class Failover:
    """Engine health for one scheduler's engines."""

    def __init__(self, engines: Sequence[EngineSlots], table: ProgramTable) -> None:
        self._engines = engines
        self._table = table
        self._moves: dict[str, list[CallMove]] = {}  # by program

    def call_failed(self, call: ScheduledCall, engine: EngineSlots) -> None:
        engine.tally.failures += 1
        call.failed_on.add(engine.index)
        call.moved_from = engine.index
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

    def take_out(self, index: int) -> list[ScheduledCall]:
        """A health check failed: the engine is dead. Returns its running calls, which
        the scheduler queues again to resume elsewhere."""
        engine = self._engines[index]
        if not engine.dead:
            self._declare_dead(index)
        for call in engine.running:
            call.moved_from = index
        return list(engine.running)

    def bring_back(self, index: int, queued: Iterable[ScheduledCall]) -> bool:
        """A health check passed: a dead or suspected engine is in service again, and the
        queued calls that failed on it may try it again. False if it already was."""
        engine = self._engines[index]
        if engine.alive:
            return False
        engine.dead = False
        engine.suspected_by.clear()
        for call in queued:
            call.failed_on.discard(index)
        return True

    def started(self, call: ScheduledCall, index: int) -> None:
        """The call starts an attempt on engine `index`: a move, if it left a failed one."""
        if call.moved_from is not None and call.moved_from != index:
            move = CallMove(call.request.call_id, call.moved_from, index)
            self._moves.setdefault(call.program_id, []).append(move)
        call.moved_from = None

    def take_moves(self, program_id: str) -> list[CallMove]:
        """The program's moves so far, forgotten here once taken."""
        return self._moves.pop(program_id, [])

    def _declare_dead(self, index: int) -> None:
        engine = self._engines[index]
        engine.dead = True
        engine.suspected_by.clear()
        self._table.engine_lost(index)
