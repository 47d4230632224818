"""Engine replicas as Ray actors, behind taskloom's own router:

    async with open_ray_replicas(2) as pool:      # a local Ray, two embedded engines
        runtime = Runtime(pool)

Each replica is an `EngineReplica` actor (`ray_actor.py`) running the in-process engine;
the client side here is one `RayReplicaBackend` per actor, and the replicas form an
`EnginePool` named `ray:replica-0`, ... . The pool probes each actor (`ping`), so a
replica that dies is taken out of service, its calls resume on another from the text
already generated, and a replica Ray restarts is used again once it answers.

Ray places the actors: one GPU each on a cluster with GPUs, else one CPU core each. Ray
is an optional extra (`pip install 'taskloom[ray]'`) and only these modules import it.
Ray's async API runs on asyncio, so these backends run under anyio's asyncio backend.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any, cast

import anyio

from taskloom.backends.base import Backend, Chunk, GenerateRequest
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.health import HealthSettings
from taskloom.backends.lifecycle import ManagedBackend
from taskloom.backends.ray_actor import EngineReplica, ReplicaLoad, ReplicaSpec
from taskloom.errors import BackendError

RAY_EXTRA_HINT = "Ray is not installed: pip install 'taskloom[ray]'"
REPLICA_NAME = "ray:replica-{index}"
# A killed replica is started again once by Ray; the pool's probe brings it back.
REPLICA_RESTARTS = 1
CLOSE_TIMEOUT_S = 30.0


def require_ray() -> ModuleType:
    """The `ray` module, or a `BackendError` naming the extra to install. Imported on
    first use, as vLLM is: importing taskloom must not pay about a second for Ray."""
    try:
        ray = importlib.import_module("ray")
        importlib.import_module("ray.exceptions")
    except ImportError as error:
        raise BackendError(f"{RAY_EXTRA_HINT} ({error})") from None
    return ray


@dataclass(frozen=True)
class Placement:
    """The resources Ray reserves for each replica."""

    num_cpus: float
    num_gpus: float

    @staticmethod
    def for_cluster(resources: dict[str, float]) -> Placement:
        """One GPU per replica on a cluster that has GPUs, else one CPU core."""
        if resources.get("GPU", 0.0) >= 1.0:
            return Placement(num_cpus=0.0, num_gpus=1.0)
        return Placement(num_cpus=1.0, num_gpus=0.0)

    def describe(self) -> str:
        return "one GPU" if self.num_gpus else "one CPU core"

    def engine_env(self) -> dict[str, str]:
        """The environment each replica's engine starts with. On CPUs: one OpenMP
        thread, unbound, because vLLM's CPU build would otherwise bind every replica's
        threads to the same cores. A value exported here wins."""
        if self.num_gpus:
            return {}
        wanted = {"VLLM_CPU_OMP_THREADS_BIND": "nobind",
                  "OMP_NUM_THREADS": str(max(1, int(self.num_cpus)))}
        return {name: value for name, value in wanted.items() if name not in os.environ}


class RayReplicaBackend(ManagedBackend):
    """The client side of one replica actor: `generate` maps the actor's stream to
    chunks; cancelling it cancels the actor's stream (and so aborts the request in the
    engine); an actor that dies or cannot be reached is a `BackendError`, which makes
    the scheduler resume the call on another engine."""

    name = "ray"
    needs_open = False

    def __init__(self, actor: Any, capacity: int, label: str,
                 kv_tokens: int | None = None) -> None:
        self.actor = actor
        self.label = label
        self._ray = require_ray()
        self._capacity = capacity
        self._kv_tokens = kv_tokens

    def capacity(self) -> int:
        return self._capacity

    def kv_capacity_tokens(self) -> int | None:
        """The replica engine's KV cache in tokens, as it said when it started."""
        return self._kv_tokens

    async def _open(self, context: AsyncExitStack) -> None:
        """The actor is started by `open_ray_replicas`."""

    async def _release(self) -> None:
        """The actor is stopped by `open_ray_replicas`."""

    async def check_health(self) -> None:
        """Returns once the actor answers with its engine up (`HealthChecked`)."""
        await self._call(self.actor.ping.remote())

    async def load(self) -> ReplicaLoad:
        return cast(ReplicaLoad, await self._call(self.actor.load.remote()))

    async def generate(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        self._require_open()
        stream = self.actor.generate.options(num_returns="streaming").remote(request)
        finished = False
        try:
            while (ref := await self._call(_next_ref(stream))) is not None:
                chunk = cast(Chunk, await self._call(ref))
                finished = chunk.finished
                yield chunk
            finished = True
        finally:
            if not finished:
                # A dead actor took its stream along: nothing is left to cancel.
                with contextlib.suppress(self._ray.exceptions.RayError):
                    self._ray.cancel(stream)

    async def _call(self, pending: Any) -> Any:
        try:
            return await pending
        except self._ray.exceptions.RayError as error:
            raise BackendError(f"{self.label}: {_reason(error)}") from error


async def _next_ref(stream: Any) -> Any:
    """The stream's next object ref, or None at its end."""
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


def _reason(error: Exception) -> str:
    ray = require_ray()
    if isinstance(error, ray.exceptions.RayActorError):
        return "the replica's Ray actor died or is restarting"
    if isinstance(error, ray.exceptions.RayTaskError):
        cause = error.cause
        return f"the replica failed the call: {type(cause).__name__}: {cause}"
    return f"{type(error).__name__}: {error}"


@asynccontextmanager
async def open_ray_replicas(
    replicas: int,
    address: str | None = None,
    model: str | None = None,
    *,
    backend: str = "vllm",
    health: HealthSettings | None = None,
    wrap: Callable[[Backend], Backend] | None = None,
    progress: Callable[[str], None] | None = None,
    **engine_options: Any,
) -> AsyncIterator[EnginePool]:
    """An `EnginePool` of `replicas` engine actors on Ray.

    Connects to the Ray cluster at `address` (None: the one `RAY_ADDRESS` names, else a
    new local one), unless this process is connected already; shuts down only a
    connection it made. Each actor opens `open_backend(backend, model=model,
    **engine_options)`; `progress` is told as the engines start.
    """
    if replicas < 1:
        raise ValueError(f"replicas must be at least 1, got {replicas}")
    ray_module = require_ray()
    say = progress or _ignore
    async with AsyncExitStack() as stack:
        if not ray_module.is_initialized():
            say(f"connecting to Ray at {address}…" if address else "starting a local Ray…")
            ray_module.init(address=address, include_dashboard=False,
                            log_to_driver=False, configure_logging=False)
            stack.callback(ray_module.shutdown)
        placement = Placement.for_cluster(ray_module.cluster_resources())
        spec = ReplicaSpec(backend, model, dict(engine_options))
        say(f"starting {replicas} {backend} replica(s) on Ray, {placement.describe()} each…")
        actors = [_start_actor(ray_module, spec, placement) for _ in range(replicas)]
        for actor in actors:
            stack.push_async_callback(_stop_actor, ray_module, actor)
        sizes = await _wait_ready(actors, say)
        names = [REPLICA_NAME.format(index=i) for i in range(replicas)]
        backends = [RayReplicaBackend(actor, capacity, name, kv)
                    for actor, (capacity, kv), name in zip(actors, sizes, names, strict=True)]
        async with EnginePool(backends, names=names, health=health, wrap=wrap) as pool:
            yield pool


def _start_actor(ray_module: ModuleType, spec: ReplicaSpec, placement: Placement) -> Any:
    remote_class = ray_module.remote(EngineReplica)
    return remote_class.options(
        num_cpus=placement.num_cpus, num_gpus=placement.num_gpus,
        max_restarts=REPLICA_RESTARTS, max_task_retries=0,
        runtime_env={"env_vars": placement.engine_env()},
    ).remote(spec)


async def _wait_ready(actors: Sequence[Any], say: Callable[[str], None]
                      ) -> list[tuple[int, int | None]]:
    """Each actor's capacity and KV tokens, once its engine is up. Every engine starts at once (the
    calls are sent before any is awaited); a line is said as each is awaited."""
    began = time.monotonic()
    opening = [actor.open.remote() for actor in actors]
    capacities: list[tuple[int, int | None]] = []
    for index, pending in enumerate(opening):
        name = REPLICA_NAME.format(index=index)
        try:
            capacity, kv_tokens = await pending
            capacities.append((int(capacity), kv_tokens))
        except require_ray().exceptions.RayError as error:
            raise BackendError(f"{name} failed to start: {_reason(error)}") from error
        say(f"{name} ready after {time.monotonic() - began:.0f} s")
    return capacities


async def _stop_actor(ray_module: ModuleType, actor: Any) -> None:
    """Stop the actor's engine cleanly if it answers, then end the actor."""
    # A dead actor fails the close: nothing is left to stop.
    with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT_S), \
            contextlib.suppress(ray_module.exceptions.RayError):
        await actor.close.remote()
    ray_module.kill(actor)


def _ignore(line: str) -> None:
    """No progress lines."""
