"""Which pool of engines a runtime or a server opens, if any: the OpenAI-compatible
servers at `engines` URLs, or `replicas` in-process engines as Ray actors (`ray`), or
none (one engine, opened by `open_backend`). Settings that do not mix are refused here,
before anything starts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

from taskloom.backends.base import Backend
from taskloom.backends.engine_pool import EnginePool, open_engines
from taskloom.backends.factory import BackendName, BackendSettingsError, backend_name
from taskloom.backends.ray_replicas import open_ray_replicas


@dataclass(frozen=True)
class RaySettings:
    """Engine replicas on Ray: `address` None connects to `RAY_ADDRESS`, else starts a
    local Ray; each replica runs the backend the runtime names."""

    replicas: int = 1
    address: str | None = None

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise BackendSettingsError(
                f"replicas must be at least 1 (one engine per Ray actor), got {self.replicas}")

    @staticmethod
    def of(ray: bool | str | None, replicas: int | None) -> RaySettings | None:
        """`ray=True` (a local Ray or `RAY_ADDRESS`) or `ray="ADDRESS"`, with
        `replicas`; None when `ray` is off (and then `replicas` must not be given)."""
        if ray is None or ray is False:
            if replicas is not None:
                raise BackendSettingsError("replicas are Ray actors: give ray= (--ray) too")
            return None
        address = None if ray is True else str(ray)
        return RaySettings(1 if replicas is None else replicas, address)


def open_pool(
    backend: BackendName | str,
    *,
    model: str | None,
    base_url: str | None,
    engines: Sequence[str] | None,
    ray: RaySettings | None,
    wrap: Callable[[Backend], Backend] | None = None,
    progress: Callable[[str], None] | None = None,
    **backend_options: Any,
) -> AbstractAsyncContextManager[EnginePool] | None:
    """The pool to open, unopened; None for a single engine. Raises
    `BackendSettingsError` for settings that do not mix."""
    if engines and ray is not None:
        raise BackendSettingsError("engines= (--engine URLs) and ray= (--ray) do not mix: "
                                   "pick the servers or the Ray replicas")
    if engines:
        if backend != BackendName.OPENAI or base_url:
            raise BackendSettingsError("engines= are OpenAI-compatible servers: use "
                                       "backend 'openai' and no base_url")
        return open_engines(engines, model=model, wrap=wrap, **backend_options)
    if ray is None:
        return None
    kind = backend_name(backend)
    if kind is BackendName.OPENAI or base_url:
        raise BackendSettingsError(
            "Ray replicas run the in-process engine (backend 'vllm'); an OpenAI server "
            "is not a replica: give several as engines= (--engine URL) instead")
    return open_ray_replicas(ray.replicas, ray.address, model, backend=kind.value,
                             wrap=wrap, progress=progress, **backend_options)
