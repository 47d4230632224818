from __future__ import annotations

import pytest

from taskloom.program.render_deadline import (
    RenderDeadlineExceeded,
    RenderWatchdog,
    call_with_deadline,
)


def _spin_forever() -> None:
    while True:  # pure Python: each loop passes a bytecode boundary
        pass


@pytest.mark.timeout(60)
def test_a_python_loop_is_interrupted_at_its_deadline() -> None:
    with pytest.raises(RenderDeadlineExceeded):
        call_with_deadline(0.05, _spin_forever)


@pytest.mark.timeout(60)
def test_a_nested_arm_keeps_the_outer_deadline() -> None:
    watchdog = RenderWatchdog()
    watchdog.arm(0.05)
    try:
        watchdog.arm(3600)
        watchdog.disarm()  # the inner pair must not cancel the outer deadline
        with pytest.raises(RenderDeadlineExceeded):
            _spin_forever()
    finally:
        watchdog.disarm()


def test_work_that_finishes_in_time_returns_its_result() -> None:
    assert call_with_deadline(60, sum, [1, 2, 3]) == 6


def _count_to(n: int) -> int:
    total = 0
    for step in range(n):
        total += step
    return total


@pytest.mark.timeout(60)
def test_an_interrupt_never_fires_after_its_render_has_returned() -> None:
    # Deadlines that end about when the work does: whichever wins, the exception
    # arrives inside the call (and is caught there) or not at all.
    outcomes = {"finished": 0, "interrupted": 0}
    for _ in range(300):
        try:
            call_with_deadline(0.0005, _count_to, 20_000)
            outcomes["finished"] += 1
        except RenderDeadlineExceeded:
            outcomes["interrupted"] += 1
    assert sum(outcomes.values()) == 300
    assert _count_to(2_000_000) == sum(range(2_000_000))  # nothing stray fires here
