"""A run's report on several engines: the load it put on each, the calls that moved off
an engine that failed, and the verdict that every engine is gone (an engine error, not a
failed program)."""

from __future__ import annotations

import dataclasses
from typing import Protocol, runtime_checkable

from taskloom.backends.engine_pool import EnginePool
from taskloom.orchestrator.engines_report import CallMove, EnginesReport, EngineUse
from taskloom.orchestrator.result import RunResult, RunStatus


@runtime_checkable
class RecordsMoves(Protocol):
    def take_moves(self, program_id: str) -> list[CallMove]: ...


async def with_engines_report(result: RunResult, pool: EnginePool, scheduler: object) -> RunResult:
    """`result` with its `engines` record. A run that failed, or had calls move, is
    followed by a health check of every engine, so the record says which are in service
    now; if none is and the run failed, it failed for want of an engine."""
    moves = tuple(_moves(scheduler, result.run_id))
    if result.status is RunStatus.FAILED or moves:
        await pool.check_now()
    reasons = pool.down_reasons()
    uses = tuple(
        EngineUse(index=engine.index, name=engine.name, in_service=reason is None,
                  out_of_service_reason=reason, **vars(tally))
        for engine, reason, tally in zip(
            pool.engines, reasons, pool.usage(result.run_id), strict=True)
    )
    lost = result.status is RunStatus.FAILED and all(reason is not None for reason in reasons)
    report = EnginesReport(uses, moves, lost)
    pool.moved_calls += len(report.moves)
    result = dataclasses.replace(result, engines=report)
    if not lost:
        return result
    why = "; ".join(f"{use.name}: {use.out_of_service_reason}" for use in uses)
    error = f"engine error: every engine is out of service ({why})"
    return result.with_status(RunStatus.FAILED, f"{error}; {result.error}" if result.error
                              else error)


def _moves(scheduler: object, program_id: str) -> list[CallMove]:
    # The shared sample pool wraps the program-aware scheduler as `inner`.
    for candidate in (scheduler, getattr(scheduler, "inner", None)):
        if isinstance(candidate, RecordsMoves):
            return candidate.take_moves(program_id)
    return []
