"""A deadline for synchronous rendering, enforced by one watchdog thread.

Templates render on the event loop's thread, so a template loop that runs for minutes
freezes every node, every timeout and every signal handler with it. Python cannot
kill a thread, and a thread (or a process) per render would cost far more than the
render itself (the dispatch benchmark renders about 10,000 templates a second). One
long-lived daemon thread instead watches a deadline slot per rendering thread and, when
a render passes its deadline, raises `RenderDeadlineExceeded` inside that thread with
`PyThreadState_SetAsyncExc`. The exception arrives at the next bytecode boundary: it
stops Python-level loops and recursion (Jinja compiles templates to Python), not one
long C call; size limits (template_limits.py) keep those short. Hooking `range` and the
loops instead would miss recursive macros and filters that loop in Python.

Per render the cost is two uncontended lock round-trips. The watchdog sleeps until the
earliest deadline; while renders keep coming it also wakes about once per deadline
length, so that a new render rarely has to wake it (a thread switch costs more than the
render it guards). Only after a quiet period does it sleep until the next render.
"""

from __future__ import annotations

import ctypes
import functools
import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import anyio.to_thread
import sniffio
import trio
import trio.testing
from anyio.lowlevel import RunVar

_Result = TypeVar("_Result")

# A render on the event loop's thread stops every other task (every tenant's, in a
# server) until it ends, so there it gets only this long; `render_off_loop` does one that
# needs more again in a worker thread, under the whole deadline. Renders take
# microseconds: only a loop that would hit the deadline anyway gets this far.
LOOP_RENDER_SECONDS = 0.02
# How long an interrupted render that is still armed has before it is interrupted again
# (the first interrupt was swallowed). Long beside the microseconds between an
# interrupt's arrival and the disarm it unwinds to, so a render is not hit twice.
INTERRUPT_RETRY_SECONDS = 1.0
# Worker threads rendering at once, per event loop: a CPU-bound render holds the GIL, and
# the loop's thread competes with each of them for it.
RENDER_THREADS = 2


class RenderDeadlineExceeded(BaseException):
    """Raised asynchronously inside a render that ran past its deadline.

    A BaseException so that no `except Exception` in Jinja or a filter swallows it;
    `bounded_render` turns it into the caller's error.
    """


@dataclass
class _Slot:
    deadline: float
    # The arms held by this thread, outermost first: only the outermost sets the deadline.
    tokens: list[object] = field(default_factory=list)


class RenderWatchdog:
    """Interrupts a thread whose armed deadline has passed. `arm`/`disarm` nest: only
    the outermost pair sets the deadline. Each pair shares a token, so a disarm repeated
    after an interrupt cut it short does no harm."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._slots: dict[int, _Slot] = {}
        self._interrupted: set[int] = set()
        self._next_check = math.inf  # when the watchdog thread looks next
        self._armed_since_check = False
        self._longest_seconds = 0.0
        self._thread: threading.Thread | None = None

    def arm(self, token: object, seconds: float) -> None:
        thread_id = threading.get_ident()
        deadline = time.monotonic() + seconds
        with self._lock:
            slot = self._slots.get(thread_id)
            if slot is not None:
                slot.tokens.append(token)
                return
            self._slots[thread_id] = _Slot(deadline, [token])
            self._armed_since_check = True
            self._longest_seconds = max(self._longest_seconds, seconds)
            if deadline < self._next_check:
                self._next_check = deadline
                self._ensure_thread()
                self._wakeup.notify()

    def disarm(self, token: object) -> None:
        """Idempotent: a second call with the same token changes nothing."""
        thread_id = threading.get_ident()
        with self._lock:
            slot = self._slots.get(thread_id)
            if slot is not None and token in slot.tokens:
                slot.tokens.remove(token)
                if not slot.tokens:
                    del self._slots[thread_id]
            if thread_id not in self._slots and thread_id in self._interrupted:
                # The deadline passed just as the render finished: drop the exception
                # if it is still pending, so it cannot fire in unrelated code later.
                _set_async_exception(thread_id, None)
                self._interrupted.discard(thread_id)

    def armed(self) -> bool:
        """Whether the calling thread holds a deadline."""
        with self._lock:
            return threading.get_ident() in self._slots

    def disarm_surely(self, token: object) -> None:
        """`disarm`, repeated until it completes. An interrupt can arrive inside the
        disarm itself (the render finished just as its deadline passed); a disarm cut
        short would leave the thread armed, and the watchdog would then interrupt
        whatever the thread runs next, a second later and every second after."""
        while True:
            try:
                self.disarm(token)
                return
            except RenderDeadlineExceeded:
                continue

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._watch, name="taskloom-render-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        with self._lock:
            while True:
                now = time.monotonic()
                earliest = math.inf
                for thread_id, slot in self._slots.items():
                    if slot.deadline <= now:
                        # Kept, not popped: an interrupt that lands in a finalizer or a
                        # weakref callback run during the render is printed and ignored
                        # by Python, and the render would go on. One still armed a
                        # retry later is interrupted again.
                        slot.deadline = now + INTERRUPT_RETRY_SECONDS
                        self._interrupted.add(thread_id)
                        _set_async_exception(thread_id, RenderDeadlineExceeded)
                    earliest = min(earliest, slot.deadline)
                if earliest == math.inf and self._armed_since_check:
                    # Busy but between renders: look again later rather than be woken.
                    earliest = now + self._longest_seconds
                self._armed_since_check = False
                self._next_check = earliest
                self._wakeup.wait(None if earliest == math.inf else earliest - now)

    def _after_fork(self) -> None:
        # The child has no watchdog thread; the next arm starts one.
        self._lock = threading.Lock()
        self._wakeup = threading.Condition(self._lock)
        self._slots.clear()
        self._interrupted.clear()
        self._next_check = math.inf
        self._armed_since_check = False
        self._thread = None


def _set_async_exception(thread_id: int, exception: type[BaseException] | None) -> None:
    # None clears a pending exception (ctypes passes it as NULL).
    target = None if exception is None else ctypes.py_object(exception)
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), target)


WATCHDOG = RenderWatchdog()
os.register_at_fork(after_in_child=WATCHDOG._after_fork)


def call_with_deadline(seconds: float, work: Callable[..., _Result], *args: Any) -> _Result:
    """`work(*args)`, interrupted with `RenderDeadlineExceeded` past `seconds`. The
    exception may also arrive as `work` returns: catch it around this call."""
    token = object()
    try:
        WATCHDOG.arm(token, seconds)  # inside the try: an arm cut short is undone too
        return work(*args)
    finally:
        WATCHDOG.disarm_surely(token)


_on_loop = threading.local()
_render_threads: RunVar[anyio.CapacityLimiter] = RunVar("taskloom_render_threads")
def loop_budget() -> float | None:
    """How long a render may block the event loop: set inside `render_off_loop`'s first
    try, None everywhere else (worker threads, sync callers)."""
    budget: float | None = getattr(_on_loop, "budget", None)
    return budget


async def render_off_loop(work: Callable[..., _Result], *args: Any) -> _Result:
    """`work(*args)`, a render, kept from blocking the event loop past
    LOOP_RENDER_SECONDS: first on the loop's thread under that budget (renders under it
    let `RenderDeadlineExceeded` through, see `loop_budget`); past it, again from the
    start in a worker thread, where the templates' own deadline applies. `work` must be
    safe to repeat, as a render of a template is. On a virtual clock, simply
    `work(*args)`."""
    if _on_virtual_clock():
        # A virtual clock jumps ahead while the loop waits on a thread, which would
        # charge a slow render's wall time to simulated time; render on the loop, where
        # the templates' own deadline still stops a hostile one.
        return work(*args)
    _on_loop.budget = LOOP_RENDER_SECONDS
    try:
        return work(*args)
    except RenderDeadlineExceeded:
        pass
    finally:
        _on_loop.budget = None
    # Abandoned on cancel: the watchdog still stops the thread at its deadline.
    return await anyio.to_thread.run_sync(
        functools.partial(work, *args), abandon_on_cancel=True, limiter=_render_limiter()
    )


def _on_virtual_clock() -> bool:
    """Whether this loop runs on trio's MockClock (tests and simulated benchmarks)."""
    try:
        if sniffio.current_async_library() != "trio":
            return False
    except sniffio.AsyncLibraryNotFoundError:
        return False
    return isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock)


def _render_limiter() -> anyio.CapacityLimiter:
    try:
        return _render_threads.get()
    except LookupError:
        limiter = anyio.CapacityLimiter(RENDER_THREADS)
        _render_threads.set(limiter)
        return limiter
