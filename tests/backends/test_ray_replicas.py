"""Replicas as Ray actors (`open_ray_replicas`), on a local Ray started once for the
session, with the scripted double as each actor's engine: streaming, cancellation that
reaches the actor's engine, a killed actor as a `BackendError`, health checks that take a
dead replica out and bring a restarted one back, and a run that loses a replica mid-way.

Ray runs on asyncio and in other processes, so these tests run on the wall clock; they
wait for states (polling with a deadline), never for durations.
"""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from types import ModuleType

import anyio
import pytest

from taskloom.backends.base import GenerateRequest, SamplingParams, collect
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.health import HealthSettings
from taskloom.backends.ray_replicas import (
    RAY_EXTRA_HINT,
    Placement,
    RayReplicaBackend,
    open_ray_replicas,
    require_ray,
)
from taskloom.errors import BackendError
from taskloom.orchestrator.result import RunResult, RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime

ANSWER = "alpha beta gamma delta epsilon zeta eta theta"
CHECKS = HealthSettings(interval_s=0.5, timeout_s=5.0)
DEADLINE_S = 60.0
FAN_OUT = loads("name: fan\nnodes:\n" + "".join(
    f"  q{i}: {{kind: llm, prompt: \"question {i}\"}}\n" for i in range(8)
) + "outputs:\n" + "".join(f"  a{i}: \"{{{{ q{i} }}}}\"\n" for i in range(8)))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"  # Ray's async API runs on asyncio


@pytest.fixture(scope="session")
def local_ray() -> Iterator[ModuleType]:
    ray = require_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    # The actors unpickle `answer` below; they cannot import this test module.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


def answer(request: GenerateRequest) -> str:
    return ANSWER


def request(call_id: str) -> GenerateRequest:
    return GenerateRequest(call_id, SamplingParams(max_tokens=64), prompt="question")


@pytest.fixture
async def pool(local_ray: ModuleType) -> AsyncIterator[EnginePool]:
    async with open_ray_replicas(2, backend="scripted", respond=answer, per_chunk_s=0.2,
                                 health=CHECKS) as opened:
        yield opened


def replica(pool: EnginePool, index: int) -> RayReplicaBackend:
    backend = pool.engines[index].backend.inner
    assert isinstance(backend, RayReplicaBackend)
    return backend


async def until(condition: Callable[[], Awaitable[bool]]) -> None:
    with anyio.fail_after(DEADLINE_S):
        while not await condition():
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_replica_streams_its_engines_chunks(pool: EnginePool) -> None:
    assert [engine.name for engine in pool.engines] == ["ray:replica-0", "ray:replica-1"]
    chunks = [chunk async for chunk in replica(pool, 0).generate(request("c1"))]
    assert "".join(chunk.text for chunk in chunks) == ANSWER
    assert len(chunks) == len(ANSWER.split())
    assert chunks[-1].finished and chunks[-1].generated_tokens == len(ANSWER.split())
    assert replica(pool, 0).capacity() == 64  # the scripted engine's, asked of the actor
    assert replica(pool, 0).kv_capacity_tokens() is None  # the scripted engine has none


@pytest.mark.anyio
async def test_cancelling_a_stream_aborts_the_request_in_the_replicas_engine(
        pool: EnginePool) -> None:
    backend = replica(pool, 0)
    stream = backend.generate(request("c1"))
    await anext(stream)
    loaded = await backend.load()
    assert (loaded.streams, loaded.engine_requests) == (1, 1)
    await stream.aclose()

    async def idle() -> bool:
        now = await backend.load()
        return (now.streams, now.engine_requests) == (0, 0)

    await until(idle)
    assert (await replica(pool, 1).load()).streams == 0


@pytest.mark.anyio
async def test_a_killed_replica_fails_its_stream_and_its_health_check(
        pool: EnginePool, local_ray: ModuleType) -> None:
    backend = replica(pool, 0)
    stream = backend.generate(request("c1"))
    await anext(stream)
    local_ray.kill(backend.actor, no_restart=True)
    with pytest.raises(BackendError, match="ray:replica-0: the replica's Ray actor died"):
        async for _ in stream:
            pass
    await pool.check_now()
    assert pool.in_service() == [False, True]
    assert "ray:replica-0" in (pool.down_reasons()[0] or "")
    assert (await collect(replica(pool, 1).generate(request("c2")))).text == ANSWER


@pytest.mark.anyio
async def test_a_replica_ray_restarts_is_used_again(
        pool: EnginePool, local_ray: ModuleType) -> None:
    backend = replica(pool, 0)
    stream = backend.generate(request("c1"))
    await anext(stream)
    first_process = await backend.actor.process_id.remote()
    local_ray.kill(backend.actor, no_restart=False)
    with pytest.raises(BackendError):
        async for _ in stream:
            pass

    async def back_in_service() -> bool:
        await pool.check_now()
        return pool.in_service() == [True, True]

    await until(back_in_service)
    assert await backend.actor.process_id.remote() != first_process
    assert (await collect(backend.generate(request("c2")))).text == ANSWER


@pytest.mark.anyio
async def test_a_run_that_loses_a_replica_finishes_its_calls_on_the_other(
        pool: EnginePool, local_ray: ModuleType) -> None:
    doomed = replica(pool, 0)
    result: list[RunResult] = []

    async def run() -> None:
        result.append(await Runtime(pool).run(FAN_OUT))

    async def busy() -> bool:
        return (await doomed.load()).streams > 0

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        await until(busy)
        local_ray.kill(doomed.actor, no_restart=True)
    (done,) = result
    assert done.status is RunStatus.SUCCEEDED, done.error
    assert done.outputs == {f"a{i}": ANSWER for i in range(8)}
    assert done.engines is not None and done.engines.moves
    assert {(move.from_engine, move.to_engine) for move in done.engines.moves} == {(0, 1)}
    assert [use.in_service for use in done.engines.engines] == [False, True]


def test_replicas_take_a_gpu_each_where_the_cluster_has_gpus() -> None:
    assert Placement.for_cluster({"CPU": 64.0, "GPU": 8.0}) == Placement(0.0, 1.0)
    assert Placement.for_cluster({"CPU": 2.0}) == Placement(1.0, 0.0)
    assert Placement.for_cluster({"CPU": 2.0}).describe() == "one CPU core"


def test_cpu_replicas_get_one_unbound_thread_unless_the_user_chose(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VLLM_CPU_OMP_THREADS_BIND", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    cpu = Placement(num_cpus=1.0, num_gpus=0.0)
    assert cpu.engine_env() == {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": "1"}
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0-1")
    assert cpu.engine_env() == {"OMP_NUM_THREADS": "1"}
    assert Placement(num_cpus=0.0, num_gpus=1.0).engine_env() == {}


def test_without_ray_installed_the_error_names_the_extra(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(BackendError, match="^" + re.escape(RAY_EXTRA_HINT)):
        require_ray()


@pytest.mark.anyio
async def test_a_replica_whose_engine_cannot_start_stops_the_pool_from_opening(
        local_ray: ModuleType) -> None:
    with pytest.raises(BackendError, match=r"ray:replica-0 failed to start: .*no_such_option"):
        async with open_ray_replicas(1, backend="scripted", no_such_option=1):
            pass


@pytest.mark.anyio
async def test_zero_replicas_are_refused_before_ray_starts() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        async with open_ray_replicas(0, backend="scripted"):
            pass
