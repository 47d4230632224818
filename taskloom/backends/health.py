"""Health checks on several engines: a cheap probe of each, every few seconds, told to
whoever routes calls to them (the schedulers).

A probe is an async function that returns when its engine answers and raises when it
does not; one that takes longer than `timeout_s` fails. Every result is told to every
listener, not only changes: a listener may have taken an engine out of service on its
own (a call failed there), and a passing probe is what brings it back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import anyio

Probe = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class HealthSettings:
    """How often each engine is probed, and how long a probe may take."""

    interval_s: float = 5.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not (self.interval_s > 0 and self.timeout_s > 0):
            raise ValueError(f"health check times must be positive, got {self}")


@runtime_checkable
class EngineHealthListener(Protocol):
    """Told the result of each probe of engine `index`."""

    def engine_down(self, index: int, reason: str) -> None: ...

    def engine_up(self, index: int) -> None: ...


@runtime_checkable
class HealthChecked(Protocol):
    """A backend that can be probed (`OpenAIBackend` asks its server)."""

    async def check_health(self) -> None: ...


def probe_of(backend: object) -> Probe | None:
    """The backend's own probe, looking through wrappers (`inner`); None if it has
    none (an in-process or simulated engine fails its calls instead)."""
    while backend is not None:
        if isinstance(backend, HealthChecked):
            return backend.check_health
        backend = getattr(backend, "inner", None)
    return None


async def probe_once(probe: Probe, timeout_s: float) -> str | None:
    """None if the engine answered in time; else why it did not."""
    try:
        with anyio.fail_after(timeout_s):
            await probe()
    except TimeoutError:
        return f"no answer to its health check within {timeout_s:g} s"
    except Exception as error:  # whatever breaks a probe means the engine is not usable
        return str(error) or type(error).__name__
    return None


class HealthMonitor:
    """The health of engines 0..n-1, from their probes (None: never probed, always up)."""

    def __init__(self, probes: Sequence[Probe | None], settings: HealthSettings) -> None:
        self.settings = settings
        self._probes = list(probes)
        self.down_reasons: list[str | None] = [None] * len(self._probes)
        self._listeners: list[EngineHealthListener] = []

    def in_service(self, index: int) -> bool:
        return self.down_reasons[index] is None

    def watch(self, listener: EngineHealthListener) -> None:
        """Tell `listener` every result from now on, and which engines are down now."""
        self._listeners.append(listener)
        for index, reason in enumerate(self.down_reasons):
            if reason is not None:
                listener.engine_down(index, reason)

    async def check_all(self) -> None:
        """Probe every engine at once and tell the listeners."""
        results: list[str | None] = [None] * len(self._probes)

        async def check(index: int, probe: Probe) -> None:
            results[index] = await probe_once(probe, self.settings.timeout_s)

        async with anyio.create_task_group() as group:
            for index, probe in enumerate(self._probes):
                if probe is not None:
                    group.start_soon(check, index, probe)
        self.down_reasons = results
        for listener in self._listeners:
            for index, reason in enumerate(results):
                if reason is None:
                    listener.engine_up(index)
                else:
                    listener.engine_down(index, reason)

    async def check_forever(self) -> None:
        while True:
            await anyio.sleep(self.settings.interval_s)
            await self.check_all()
