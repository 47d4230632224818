"""`--engine URL`, repeatable: several OpenAI-compatible engines behind one run or server.

`--engine` implies `--backend openai`; `--base-url` stays the spelling for one engine
without health checks, and the two do not mix."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, NoReturn

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


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
