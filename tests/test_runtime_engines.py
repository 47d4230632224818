"""A runtime over several engines (`Runtime(EnginePool(...))`): each run's `engines`
record, calls moved off an engine that breaks, and a run that loses every engine."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
import pytest
from health_switch import Switch
from trio.testing import MockClock

from taskloom.backends.base import GenerateRequest
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.factory import BackendSettingsError
from taskloom.backends.health import HealthSettings
from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.result import NodeStatus, RunResult, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime

T = TypeVar("T")
CHECKS = HealthSettings(interval_s=1.0, timeout_s=0.5)
FAN_OUT = loads("name: fan\nnodes:\n" + "".join(
    f"  q{i}: {{kind: llm, prompt: \"question {i}\"}}\n" for i in range(8)
) + "outputs:\n" + "".join(f"  a{i}: \"{{{{ q{i} }}}}\"\n" for i in range(8)))
TWO_STEPS = loads("""
name: two
nodes:
  first: {kind: llm, prompt: "first"}
  second: {kind: llm, prompt: "second {{ first }}"}
outputs: {answer: "{{ second }}"}
""")


def answer(request: object) -> str:
    return "alpha beta gamma delta epsilon zeta"


def run_virtual(main: Callable[[], Awaitable[T]]) -> T:
    return anyio.run(main, backend="trio",
                     backend_options={"clock": MockClock(autojump_threshold=0)})


def test_a_run_reports_the_load_it_put_on_each_engine() -> None:
    engines = [ScriptedBackend(respond=answer, per_chunk_s=1.0) for _ in range(2)]

    async def main() -> RunResult:
        async with EnginePool(engines, names=["a", "b"], health=CHECKS) as pool:
            return await Runtime(pool).run(FAN_OUT)

    result = run_virtual(main)
    assert result.status is RunStatus.SUCCEEDED and result.engines is not None
    uses = result.engines.engines
    assert [(u.name, u.calls, u.in_service) for u in uses] == [("a", 4, True), ("b", 4, True)]
    assert sum(u.generated_tokens for u in uses) == result.generated_tokens == 8 * 6
    assert result.engines.moves == () and not result.engines.every_engine_lost


def test_calls_on_an_engine_that_breaks_finish_on_the_other_with_the_same_answers() -> None:
    breaking = ScriptedBackend(respond=answer, per_chunk_s=1.0, fail_after_chunks=3)
    steady = ScriptedBackend(respond=answer, per_chunk_s=1.0)

    async def main() -> RunResult:
        async with EnginePool([breaking, steady], probes=[Switch(), Switch()],
                              health=CHECKS) as pool:
            return await Runtime(pool).run(FAN_OUT)

    result = run_virtual(main)
    assert result.status is RunStatus.SUCCEEDED and result.engines is not None
    assert set(result.outputs.values()) == {answer(None)}
    moves = result.engines.moves
    assert len(moves) == 4 and {(m.from_engine, m.to_engine) for m in moves} == {(0, 1)}
    assert sorted(m.call_id.split("/")[1] for m in moves) == ["q0", "q2", "q4", "q6"]
    assert [u.calls for u in result.engines.engines] == [0, 8]
    assert result.engines.engines[0].failed_attempts == 4


def test_a_run_that_loses_every_engine_is_an_engine_error_and_keeps_finished_nodes() -> None:
    probes = [Switch(), Switch()]
    engines = [ScriptedBackend(respond=answer, per_chunk_s=1.0) for _ in range(2)]

    def down_after_first(request: GenerateRequest) -> str:
        if request.messages and request.messages[-1].content.startswith("second"):
            for probe in probes:
                probe.up = False
        return answer(request)

    async def main() -> RunResult:
        async with EnginePool(engines, names=["a", "b"], probes=probes,
                              health=CHECKS) as pool:
            for engine in engines:
                engine.respond = down_after_first
            return await Runtime(pool).run(TWO_STEPS)

    result = run_virtual(main)
    assert result.status is RunStatus.FAILED and result.engines is not None
    assert result.engines.every_engine_lost
    assert result.error is not None and result.error.startswith(
        "engine error: every engine is out of service (a: probe refused; "
        "b: probe refused)")
    assert result.nodes["first"].status is NodeStatus.SUCCEEDED
    assert result.nodes["second"].status is NodeStatus.FAILED


@pytest.mark.anyio
async def test_runtime_open_takes_engines_for_the_openai_backend_only() -> None:
    with pytest.raises(BackendSettingsError, match="use backend 'openai' and no base_url"):
        async with Runtime.open("vllm", engines=["http://127.0.0.1:1"]):
            pass
