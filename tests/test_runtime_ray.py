"""A runtime over two embedded vLLM replicas as Ray actors, on a local Ray the test
starts (float32, greedy): eight parallel calls use both replicas with the answers one
replica gives alone; a cancelled call is aborted in the replica's vLLM engine; a replica
Ray restarts after `ray.kill` starts its engine again and is used again; a replica
`ray.kill`ed for good mid-run has its calls finish on the other with those same
answers; killing every replica is an engine error that keeps the finished nodes.

Run alone: `pytest -m ray tests/test_runtime_ray.py` (starting the two engines takes
about 100 s on two shared cores).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest

from taskloom.backends.base import GenerateRequest, Message, SamplingParams, collect, kv_capacity_of
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.health import HealthSettings
from taskloom.backends.ray_actor import ReplicaLoad
from taskloom.backends.ray_replicas import RayReplicaBackend, open_ray_replicas, require_ray
from taskloom.orchestrator.events import NodeEvent
from taskloom.orchestrator.result import NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.store import RunStore
from taskloom.program.load import loads
from taskloom.runtime import Runtime

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

QUESTIONS = ["a lighthouse", "the moon", "rivers", "bread", "a violin", "winter", "bees",
             "a library"]
# Answers long enough (the model writes on to max_tokens) that a replica is seen busy.
FAN_OUT = loads(
    "name: fan_out\ndefaults: {temperature: 0, max_tokens: 48}\nnodes:\n"
    + "".join(f"  q{i}: {{kind: llm, prompt: \"Write a long story about {topic}.\"}}\n"
              for i, topic in enumerate(QUESTIONS))
    + "outputs:\n" + "".join(f"  a{i}: \"{{{{ q{i} }}}}\"\n" for i in range(len(QUESTIONS)))
)
AFTER_FIRST = loads(
    "name: after_first\ndefaults: {temperature: 0, max_tokens: 48}\nnodes:\n"
    "  first: {kind: llm, prompt: \"Name a color.\", max_tokens: 4}\n"
    + "".join(f"  q{i}: {{kind: llm, prompt: \"After {{{{ first }}}}, write a long story"
              f" about {topic}.\"}}\n" for i, topic in enumerate(QUESTIONS[:4]))
    + "outputs:\n  first: \"{{ first }}\"\n"
)
CHECKS = HealthSettings(interval_s=1.0, timeout_s=10.0)
WAIT_S = 600.0


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"  # Ray's async API and vLLM's engine run on asyncio


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[EnginePool]:
    async with open_ray_replicas(2, dtype="float32", max_model_len=512, max_num_seqs=8,
                                 health=CHECKS) as opened:
        yield opened


@pytest.fixture(scope="module")
async def single_engine_answers(pool: EnginePool) -> dict[str, Any]:
    """The fan-out's answers from one replica alone."""
    result = await Runtime(pool.engines[0].backend).run(FAN_OUT)
    assert result.status is RunStatus.SUCCEEDED, result.error
    return dict(result.outputs)


def actor(pool: EnginePool, index: int) -> Any:
    backend = pool.engines[index].backend.inner
    assert isinstance(backend, RayReplicaBackend)
    return backend.actor


async def busy(pool: EnginePool, index: int) -> bool:
    backend = pool.engines[index].backend.inner
    assert isinstance(backend, RayReplicaBackend)
    return ((await backend.load()).engine_requests or 0) >= 1


async def run_until(runtime: Runtime, program: Any, condition: Callable[[], Awaitable[bool]],
                    then: Callable[[], None], **options: Any) -> RunResult:
    """Run `program`; once `condition` holds while it runs, call `then`."""
    results: list[RunResult] = []

    async def run() -> None:
        results.append(await runtime.run(program, **options))

    async with anyio.create_task_group() as group:
        group.start_soon(run)
        with anyio.fail_after(WAIT_S):
            while not results and not await condition():
                await anyio.sleep(0.05)
        assert not results, "the run ended before the condition was met"
        then()
    return results[0]


@pytest.mark.anyio
async def test_eight_parallel_calls_use_both_replicas_with_the_single_engine_answers(
        pool: EnginePool, single_engine_answers: dict[str, Any]) -> None:
    result = await Runtime(pool).run(FAN_OUT)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.engines is not None
    uses = result.engines.engines
    assert [use.name for use in uses] == ["ray:replica-0", "ray:replica-1"]
    assert all(use.calls >= 1 for use in uses), uses
    assert sum(use.calls for use in uses) == len(QUESTIONS)
    assert result.outputs == single_engine_answers
    # Each replica says how much KV its engine holds (what a KV-budgeting policy reads).
    sizes = [kv_capacity_of(engine.backend) for engine in pool.engines]
    assert all(size is not None and size >= 2048 for size in sizes), sizes


@pytest.mark.anyio
async def test_a_cancelled_call_is_aborted_in_the_replicas_vllm_engine(
        pool: EnginePool) -> None:
    backend = pool.engines[0].backend.inner
    assert isinstance(backend, RayReplicaBackend)
    request = GenerateRequest("long", SamplingParams(max_tokens=400), messages=(
        Message("user", "Write a long story about a lighthouse."),))
    stream = backend.generate(request)
    first = await anext(stream)
    assert not first.finished, first
    assert (await backend.load()).engine_requests == 1
    await stream.aclose()
    with anyio.fail_after(60):
        while (await backend.load()) != ReplicaLoad(streams=0, engine_requests=0):
            await anyio.sleep(0.05)


@pytest.mark.anyio
async def test_a_replica_ray_restarts_starts_its_engine_again_and_is_used_again(
        pool: EnginePool) -> None:
    ray = require_ray()
    backend = pool.engines[0].backend.inner
    assert isinstance(backend, RayReplicaBackend)
    request = GenerateRequest("again", SamplingParams(max_tokens=16),
                              prompt="The capital of France is")
    before = (await collect(backend.generate(request))).text
    first_process = await backend.actor.process_id.remote()
    ray.kill(backend.actor, no_restart=False)
    with anyio.fail_after(WAIT_S):
        while pool.in_service()[0]:  # the probes, every second, see it go
            await anyio.sleep(0.05)
        while not pool.in_service()[0]:  # and come back once its engine is up
            await anyio.sleep(0.5)
    assert await backend.actor.process_id.remote() != first_process
    assert (await collect(backend.generate(request))).text == before


@pytest.mark.anyio
async def test_a_replica_killed_mid_run_hands_its_calls_to_the_other(
        pool: EnginePool, single_engine_answers: dict[str, Any]) -> None:
    ray = require_ray()

    async def replica_1_busy() -> bool:
        return await busy(pool, 1)

    result = await run_until(Runtime(pool), FAN_OUT, replica_1_busy,
                             lambda: ray.kill(actor(pool, 1), no_restart=True))
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert result.engines is not None
    moves = result.engines.moves
    assert moves and all((m.from_engine, m.to_engine) == (1, 0) for m in moves)
    assert pool.moved_calls >= len(moves)
    assert result.outputs == single_engine_answers
    assert [use.in_service for use in result.engines.engines] == [True, False]


@pytest.mark.anyio
async def test_killing_every_replica_is_an_engine_error_that_keeps_finished_nodes(
        pool: EnginePool, tmp_path: Path) -> None:
    ray = require_ray()
    first_done = anyio.Event()

    def on_event(event: NodeEvent) -> None:
        if event.node_id == "first" and event.status is NodeStatus.SUCCEEDED:
            first_done.set()

    async def fan_out_running() -> bool:
        return first_done.is_set() and await busy(pool, 0)

    def kill_every_replica() -> None:
        for index in range(len(pool.engines)):
            ray.kill(actor(pool, index), no_restart=True)

    store = RunStore(tmp_path / "runs.db")
    try:
        result = await run_until(Runtime(pool, store=store), AFTER_FIRST, fan_out_running,
                                 kill_every_replica, on_event=on_event)
        assert result.status is RunStatus.FAILED
        assert result.engines is not None and result.engines.every_engine_lost
        assert "every engine is out of service" in (result.error or "")
        assert result.nodes["first"].status is NodeStatus.SUCCEEDED
        kept = store.finished_nodes(result.run_id, ["first"])
        assert kept["first"].output == result.nodes["first"].output
    finally:
        store.close()
