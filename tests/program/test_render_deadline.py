from __future__ import annotations

import contextlib
import threading

import anyio
import anyio.lowlevel
import pytest
from trio.testing import MockClock

from taskloom.program.refs import TemplateError, render_template
from taskloom.program.render_deadline import (
    WATCHDOG,
    RenderDeadlineExceeded,
    RenderWatchdog,
    call_with_deadline,
    loop_budget,
    render_off_loop,
)
from taskloom.program.template_limits import TemplateLimits, set_template_limits


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
    outer, inner = object(), object()
    watchdog.arm(outer, 0.05)
    try:
        watchdog.arm(inner, 3600)
        watchdog.disarm(inner)  # the inner pair must not cancel the outer deadline
        watchdog.disarm(inner)  # nor a repeated disarm of it
        with pytest.raises(RenderDeadlineExceeded):
            _spin_forever()
    finally:
        watchdog.disarm_surely(outer)


def _swallow_one_interrupt_then_spin() -> None:
    # Python does the same with an interrupt that lands in a finalizer or weakref callback.
    with contextlib.suppress(RenderDeadlineExceeded):
        _spin_forever()
    _spin_forever()


@pytest.mark.timeout(60)
def test_a_render_that_swallowed_its_interrupt_is_interrupted_again() -> None:
    with pytest.raises(RenderDeadlineExceeded):
        call_with_deadline(0.05, _swallow_one_interrupt_then_spin)


class _InterruptedInsideDisarm(RenderWatchdog):
    """Its first disarm runs until the deadline's interrupt arrives, as a render that
    finishes just as its deadline passes can see."""

    def __init__(self) -> None:
        super().__init__()
        self.cut_short = 0

    def disarm(self, token: object) -> None:
        if not self.cut_short:
            try:
                _spin_forever()
            except RenderDeadlineExceeded:
                self.cut_short += 1
                raise
        super().disarm(token)


@pytest.mark.timeout(60)
def test_an_interrupt_inside_the_disarm_still_leaves_the_thread_disarmed() -> None:
    # Left armed, the thread would be interrupted again a second later wherever it was
    # (CI saw this crash pytest itself).
    watchdog = _InterruptedInsideDisarm()
    token = object()
    watchdog.arm(token, 0.05)
    watchdog.disarm_surely(token)
    assert watchdog.cut_short == 1
    assert not watchdog.armed()


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
    assert not WATCHDOG.armed()
    assert _count_to(2_000_000) == sum(range(2_000_000))  # nothing stray fires here


_DEADLINE_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


@pytest.mark.timeout(60)
def test_a_render_past_the_loop_budget_leaves_the_loop_to_other_tasks() -> None:
    # The render that runs to its deadline finishes in a worker thread: meanwhile the
    # event loop goes on running other tasks, and the render still fails as before.
    seen: dict[str, int] = {}

    async def main() -> None:
        ticks = 0
        done = anyio.Event()

        async def other_task() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await anyio.lowlevel.checkpoint()

        async with anyio.create_task_group() as group:
            group.start_soon(other_task)
            await anyio.lowlevel.checkpoint()
            before = ticks
            with pytest.raises(TemplateError, match="time limit"):
                await render_off_loop(render_template, _DEADLINE_LOOP, {})
            seen["ticks"] = ticks - before
            done.set()

    previous = set_template_limits(TemplateLimits(max_render_seconds=0.3))
    try:
        anyio.run(main)
    finally:
        set_template_limits(previous)
    assert seen["ticks"] > 0


def test_a_quick_render_stays_on_the_loop_thread() -> None:
    def where(template: str) -> tuple[str, int]:
        return render_template(template, {"x": 1}), threading.get_ident()

    async def main() -> tuple[str, int]:
        return await render_off_loop(where, "{{ x + 1 }}")

    # Compiled once beforehand: on a loaded machine, compiling can pass the loop budget.
    render_template("{{ x + 1 }}", {"x": 0})
    assert anyio.run(main) == ("2", threading.get_ident())
    assert loop_budget() is None  # the budget applies only inside render_off_loop


def test_on_a_virtual_clock_a_slow_render_stays_on_the_loop_and_costs_no_virtual_time() -> None:
    """A thread's wall time would let trio's MockClock jump ahead; simulated runs and
    virtual-time tests must not see a render's cost as simulated seconds."""
    seen: dict[str, object] = {}

    async def main() -> None:
        before = anyio.current_time()
        with pytest.raises(TemplateError, match="time limit"):
            await render_off_loop(_on_thread_of, _DEADLINE_LOOP)
        seen["elapsed"] = anyio.current_time() - before

    def _on_thread_of(template: str) -> str:
        seen["thread"] = threading.get_ident()
        return render_template(template, {})

    previous = set_template_limits(TemplateLimits(max_render_seconds=0.3))
    try:
        anyio.run(main, backend="trio",
                  backend_options={"clock": MockClock(autojump_threshold=0)})
    finally:
        set_template_limits(previous)
    assert seen == {"elapsed": 0.0, "thread": threading.get_ident()}


def test_on_a_virtual_clock_a_render_gets_no_loop_budget_only_its_own_deadline() -> None:
    def budget_and_thread() -> tuple[float | None, int]:
        return loop_budget(), threading.get_ident()

    async def main() -> tuple[float | None, int]:
        return await render_off_loop(budget_and_thread)

    after, thread = anyio.run(main, backend="trio",
                              backend_options={"clock": MockClock(autojump_threshold=0)})
    assert after is None
    assert thread == threading.get_ident()

    async def later_loop() -> float | None:
        return (await render_off_loop(budget_and_thread))[0]

    assert anyio.run(later_loop) is not None  # a loop on the real clock keeps the budget
