"""Engine health from the calls that failed on them."""

from __future__ import annotations

from collections.abc import Callable

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.engines_report import CallMove
from taskloom.orchestrator.scheduler.failover import Failover
from taskloom.orchestrator.scheduler.program_table import ProgramTable
from taskloom.orchestrator.scheduler.records import EngineSlots, ScheduledCall, engine_slots


def engines(count: int) -> list[EngineSlots]:
    return engine_slots([ScriptedBackend() for _ in range(count)], None)


def test_a_failure_suspends_an_engine_until_the_call_works_elsewhere(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots, table = engines(2), ProgramTable()
    table.placed_on("p", 0, 0.0, (0.0, "p", "main", "c"))
    failover, call = Failover(slots, table), new_call()
    failover.call_failed(call, slots[0])
    assert not slots[0].alive and slots[1].alive and slots[0].tally.failures == 1
    assert failover.has_engine_to_try(call)
    failover.call_succeeded(call)
    assert slots[0].dead and not failover.all_dead() and not call.failed_on
    assert table.get("p").context_engine is None  # its context went with the engine


def test_a_call_that_failed_everywhere_is_forgiven(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots = engines(2)
    failover, call = Failover(slots, ProgramTable()), new_call()
    for slot in slots:
        failover.call_failed(call, slot)
    assert not failover.has_engine_to_try(call)
    failover.forgive(call)
    assert all(slot.alive for slot in slots)


def test_a_lone_engine_is_never_suspected(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots = engines(1)
    failover, call = Failover(slots, ProgramTable()), new_call()
    failover.call_failed(call, slots[0])
    assert slots[0].alive and not failover.has_engine_to_try(call)


def test_a_failed_health_check_hands_back_the_running_calls_as_moving(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots = engines(2)
    failover, call = Failover(slots, ProgramTable()), new_call()
    slots[0].running[call] = None
    assert failover.take_out(0) == [call]
    assert slots[0].dead and call.moved_from == 0
    failover.started(call, 1)
    assert failover.take_moves("p") == [CallMove("p/c0", 0, 1)]
    assert failover.take_moves("p") == []


def test_a_passing_check_brings_an_engine_back_for_the_calls_that_failed_on_it(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots = engines(2)
    failover, call = Failover(slots, ProgramTable()), new_call()
    failover.call_failed(call, slots[0])
    failover.take_out(0)
    assert failover.bring_back(0, [call])
    assert slots[0].alive and 0 not in call.failed_on
    assert not failover.bring_back(0, [call])  # already in service


def test_a_call_restarted_on_the_engine_it_left_is_no_move(
    new_call: Callable[..., ScheduledCall],
) -> None:
    slots = engines(2)
    failover, call = Failover(slots, ProgramTable()), new_call()
    failover.call_failed(call, slots[0])
    failover.started(call, 0)
    assert failover.take_moves("p") == [] and call.moved_from is None
