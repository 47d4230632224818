"""The scheduler's records of calls and engines."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.scheduler.records import CallState, ScheduledCall, engine_slots


def test_caps_are_never_above_an_engines_capacity() -> None:
    engines = [ScriptedBackend(max_in_flight=3), ScriptedBackend(max_in_flight=5)]
    assert [e.capacity for e in engine_slots(engines, 4)] == [3, 4]
    assert [e.capacity for e in engine_slots(engines, None)] == [3, 5]
    assert [e.capacity for e in engine_slots(engines, [1, 2])] == [1, 2]
    assert [e.index for e in engine_slots(engines, None)] == [0, 1]


@pytest.mark.parametrize("caps", [[1], [0, 2]])
def test_caps_need_one_positive_cap_per_engine(caps: list[int]) -> None:
    with pytest.raises(ValueError, match="one cap of at least 1 per engine"):
        engine_slots([ScriptedBackend(), ScriptedBackend()], caps)


def test_service_and_waiting_count_the_open_interval(
    new_call: Callable[[], ScheduledCall],
) -> None:
    call = new_call()
    assert call.waiting_at(4.0) == 4.0  # queued since 0
    call.state, call.waiting_s, call.attempt_started_s, call.service_s = (
        CallState.RUNNING, 4.0, 4.0, 1.5)
    assert call.waiting_at(9.0) == 4.0
    assert call.service_at(6.0) == 3.5
    assert call.is_fresh(4.0) and not call.is_fresh(5.0)


def test_a_preempted_call_records_when_it_left_and_came_back(
    new_call: Callable[[], ScheduledCall],
) -> None:
    call = new_call()
    call.run_on(0, 1.0)
    assert (call.state, call.engine, call.attempt_started_s) == (CallState.RUNNING, 0, 1.0)
    assert call.resumed_at_s == []  # a first start is no resumption
    call.preempted(3.5)
    call.state, call.queued_since_s = CallState.QUEUED, 3.5
    call.run_on(0, 15.5)
    assert (call.preemptions, call.preempted_at_s, call.resumed_at_s) == (1, [3.5], [15.5])


def test_a_resumption_taken_back_at_its_instant_counts_from_the_later_start(
    new_call: Callable[[], ScheduledCall],
) -> None:
    call = new_call()
    call.run_on(0, 1.0)
    call.preempted(3.5)
    call.run_on(0, 6.0)
    call.state, call.queued_since_s = CallState.QUEUED, 6.0  # taken back, fresh, at 6
    call.run_on(0, 9.0)
    assert call.resumed_at_s == [9.0]
    call.state, call.queued_since_s = CallState.QUEUED, 10.0  # its engine failed: no preemption
    call.run_on(0, 11.0)
    assert (call.preempted_at_s, call.resumed_at_s) == ([3.5], [9.0])
