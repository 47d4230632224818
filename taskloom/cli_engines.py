"""`--engine URL`, repeatable: several OpenAI-compatible engines behind one run or server;
or `--ray --replicas N`: the in-process engine as N Ray actors.

`--engine` implies `--backend openai`; `--base-url` stays the spelling for one engine
without health checks, and the two do not mix; nor do `--engine` and `--ray`."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, NoReturn

import typer

from taskloom.backends.factory import BackendName
from taskloom.cli_engine import EngineStart

EngineUrlsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--engine",
        help="An OpenAI-compatible engine's URL (repeatable; implies --backend openai). "
        "Each call goes to one of them, by program locality and load; each engine is "
        "health-checked, an engine that fails has its calls resume on another, and one "
        "that comes back is used again.",
    ),
]


def engines_backend(backend: str, base_url: str | None, urls: list[str] | None) -> str:
    """The backend a run with `--engine URL`s uses (openai; the default vllm gives way);
    exits 2 when `--engine` is mixed with `--base-url` or with another backend."""
    if not urls:
        return backend
    if base_url:
        _refuse("--engine and --base-url do not mix: give every engine as --engine URL")
    if backend not in (BackendName.OPENAI, BackendName.VLLM):
        _refuse(f"--engine URLs are OpenAI-compatible servers; --backend {backend} has none")
    return BackendName.OPENAI.value


def first_url(urls: list[str] | None) -> str | None:
    """Stands in for `--base-url` in the checks a one-engine run makes."""
    return urls[0] if urls else None


def with_engines(start: EngineStart, urls: list[str] | None) -> EngineStart:
    """`start`, opening the engines at `urls` (as `Runtime.open(engines=...)`)."""
    if not urls:
        return start
    return replace(start, note=f"connecting to {len(urls)} engine(s)…",
                   options={**start.options, "engines": list(urls)})


def _progress(line: str) -> None:
    """Lines said while the replicas start."""
    typer.echo(line, err=True)


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


RayOpt = Annotated[
    bool,
    typer.Option(
        "--ray",
        help="Run the engine as Ray actors, --replicas of them (one GPU each on a cluster "
        "with GPUs, else one CPU core each), behind taskloom's router: each replica is "
        "health-checked, a replica that dies has its calls resume on another, and one "
        "Ray restarts is used again. Connects to --ray-address, else $RAY_ADDRESS, else "
        "starts a local Ray. Needs pip install 'taskloom[ray]'.",
    ),
]
RayAddressOpt = Annotated[
    str | None,
    typer.Option(
        "--ray-address",
        help="With --ray: the Ray cluster to join (e.g. auto, or ray://HOST:10001).",
    ),
]
ReplicasOpt = Annotated[
    int | None,
    typer.Option(
        "--replicas", help="With --ray: how many engine replicas (Ray actors); default 1.",
    ),
]


def ray_options(ray: bool, address: str | None, replicas: int | None,
                urls: list[str] | None, base_url: str | None, backend: str) -> dict[str, Any]:
    """What `Runtime.open` gets for `--ray` (empty without it); exits 2 on options that
    do not mix, before anything starts."""
    if not ray:
        if address is not None or replicas is not None:
            _refuse("--ray-address and --replicas are for --ray: add --ray")
        return {}
    if urls:
        _refuse("--ray and --engine do not mix: pick the Ray replicas or the servers")
    if base_url or backend == BackendName.OPENAI:
        _refuse("--ray replicas run the in-process engine; an OpenAI server is not a "
                "replica (give several as --engine URL)")
    if replicas is not None and replicas < 1:
        _refuse(f"--replicas must be at least 1, got {replicas}")
    return {"ray": address or True, "replicas": replicas or 1, "progress": _progress}


def with_ray(start: EngineStart, options: dict[str, Any]) -> EngineStart:
    """`start`, opening the engine as Ray replicas (as `Runtime.open(ray=...)`)."""
    if not options:
        return start
    return replace(start, note=f"starting {options['replicas']} replica(s) on Ray: "
                   + start.note, options={**start.options, **options})
