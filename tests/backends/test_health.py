"""Health checks on virtual time: every result reaches every listener, a slow probe
fails, and a listener that comes late learns which engines are down."""

from __future__ import annotations

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.health import HealthMonitor, HealthSettings, probe_of, probe_once
from taskloom.backends.openai_http import OpenAIBackend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.errors import BackendError
from taskloom.serve.metrics import MeteredBackend, ServeMetrics


class Listener:
    def __init__(self) -> None:
        self.events: list[tuple[int, str]] = []

    def engine_down(self, index: int, reason: str) -> None:
        self.events.append((index, f"down: {reason}"))

    def engine_up(self, index: int) -> None:
        self.events.append((index, "up"))


def run_virtual(main: object) -> None:
    anyio.run(main, backend="trio",  # type: ignore[arg-type]
              backend_options={"clock": MockClock(autojump_threshold=0)})


async def healthy() -> None:
    return None


async def refusing() -> None:
    raise BackendError("refused")


async def slow() -> None:
    await anyio.sleep(60)


def test_each_check_tells_every_listener_every_result() -> None:
    listener = Listener()

    async def main() -> None:
        monitor = HealthMonitor([healthy, refusing, None], HealthSettings(1.0, 0.5))
        monitor.watch(listener)
        async with anyio.create_task_group() as group:
            group.start_soon(monitor.check_forever)
            await anyio.sleep(2.5)  # checks at 1 s and 2 s
            group.cancel_scope.cancel()
        assert [monitor.in_service(i) for i in range(3)] == [True, False, True]

    run_virtual(main)
    once = [(0, "up"), (1, "down: refused"), (2, "up")]
    assert listener.events == once + once


def test_a_probe_slower_than_its_timeout_fails() -> None:
    reasons: list[str | None] = []

    async def main() -> None:
        reasons.append(await probe_once(slow, 2.0))
        reasons.append(await probe_once(healthy, 2.0))

    run_virtual(main)
    assert reasons == ["no answer to its health check within 2 s", None]


def test_a_listener_that_comes_late_is_told_which_engines_are_down() -> None:
    late = Listener()

    async def main() -> None:
        monitor = HealthMonitor([refusing, healthy], HealthSettings())
        await monitor.check_all()
        monitor.watch(late)

    run_virtual(main)
    assert late.events == [(0, "down: refused")]


def test_the_probe_is_found_through_wrappers() -> None:
    server = OpenAIBackend("http://127.0.0.1:1")
    metered = MeteredBackend(server, ServeMetrics())
    assert probe_of(metered) == server.check_health
    assert probe_of(ScriptedBackend()) is None


def test_health_check_times_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        HealthSettings(interval_s=0)
