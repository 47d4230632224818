"""The program table: what the scheduler remembers about each running program.

Per program: the engine time its finished calls received (attained service), the time
its calls spent queued, the critical path of service through its calls (per call and per
thread), and which engine holds its context (the engine that ran its latest call, whose
prefix cache has the program's conversation so far).

The table only records; policies read it through `ProgramSnapshot`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType

from taskloom.orchestrator.scheduler.policies import ProgramSnapshot


@dataclass
class ProgramRecord:
    """One program's row. Mutated only by `ProgramTable`."""

    program_id: str
    attained_service_s: float = 0.0
    waiting_s: float = 0.0
    critical_path_s: float = 0.0
    finished_calls: int = 0
    live_calls: int = 0
    context_engine: int | None = None
    # When and by which call (its tie-break) the context engine was last set.
    context_placed: tuple[float, tuple[float, str, str, str]] | None = None
    thread_critical_path_s: dict[str, float] = field(default_factory=dict)
    call_path_end_s: dict[str, float] = field(default_factory=dict)

    def snapshot(self) -> ProgramSnapshot:
        return ProgramSnapshot(
            program_id=self.program_id,
            attained_service_s=self.attained_service_s,
            waiting_s=self.waiting_s,
            critical_path_s=self.critical_path_s,
            thread_critical_path_s=MappingProxyType(self.thread_critical_path_s),
            call_path_end_s=MappingProxyType(self.call_path_end_s),
        )


class ProgramTable:
    """Programs by id, created on their first call."""

    def __init__(self) -> None:
        self._programs: dict[str, ProgramRecord] = {}

    def __contains__(self, program_id: object) -> bool:
        return program_id in self._programs

    def __len__(self) -> int:
        return len(self._programs)

    def get(self, program_id: str) -> ProgramRecord:
        record = self._programs.get(program_id)
        if record is None:
            record = self._programs[program_id] = ProgramRecord(program_id)
        return record

    def snapshot(self, program_id: str) -> ProgramSnapshot:
        return self.get(program_id).snapshot()

    def call_started(self, program_id: str) -> None:
        self.get(program_id).live_calls += 1

    def add_waiting(self, program_id: str, waited_s: float) -> None:
        self.get(program_id).waiting_s += waited_s

    def placed_on(
        self, program_id: str, engine: int, now_s: float, order: tuple[float, str, str, str]
    ) -> None:
        """The program's call `order` (its tie-break) has its prompt computed on `engine`,
        which now holds the program's context. Of calls placed at one instant, the last
        by `order` wins, whatever order their tasks ran in, so runs are reproducible."""
        record = self.get(program_id)
        placed = (now_s, order)
        if record.context_placed is None or placed >= record.context_placed:
            record.context_engine, record.context_placed = engine, placed

    def call_ended(
        self,
        program_id: str,
        thread_id: str,
        call_id: str,
        path_start_s: float,
        service_s: float,
    ) -> None:
        """Account a call that finished, failed or was cancelled: its engine time counts
        as service either way, since the engine spent it."""
        record = self.get(program_id)
        record.live_calls -= 1
        record.finished_calls += 1
        record.attained_service_s += service_s
        path_end = path_start_s + service_s
        record.call_path_end_s[call_id] = path_end
        record.thread_critical_path_s[thread_id] = max(
            record.thread_critical_path_s.get(thread_id, 0.0), path_end
        )
        record.critical_path_s = max(record.critical_path_s, path_end)

    def engine_lost(self, engine: int) -> None:
        """Forget that any program's context lives on a dead engine."""
        for record in self._programs.values():
            if record.context_engine == engine:
                record.context_engine = record.context_placed = None

    def forget(self, program_id: str) -> None:
        """Drop a finished program's row (its calls' paths are no longer needed)."""
        self._programs.pop(program_id, None)

    def programs(self) -> list[ProgramRecord]:
        return list(self._programs.values())
