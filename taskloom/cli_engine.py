"""The options the commands that start an engine share (`--dtype`, `--trace`), and the
line that says which engine starts and in what dtype."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, NoReturn

import typer

from taskloom.backends.cpu_dtype import DTYPES, DtypeError, choose_engine_dtype
from taskloom.backends.factory import BackendName

DtypeOpt = Annotated[
    str | None,
    typer.Option(
        help=f"The in-process engine's dtype: {', '.join(DTYPES)}. Default: float32 on a "
        "CPU without native bf16 (avx512_bf16 or AMX), where bfloat16 runs about 3x "
        "slower; bfloat16 on a CPU with it; the model's own dtype on a GPU. "
        "--backend vllm only.",
    ),
]

TraceOpt = Annotated[
    bool,
    typer.Option(
        "--trace", help="Send every run's OpenTelemetry spans over OTLP/HTTP to "
        "$OTEL_EXPORTER_OTLP_ENDPOINT (else localhost:4318); on whenever that is set.",
    ),
]


@dataclass(frozen=True)
class EngineStart:
    """What to tell the user while the engine starts, and the options it starts with."""

    note: str
    options: dict[str, Any] = field(default_factory=dict)


def engine_start(backend: BackendName, dtype: str | None) -> EngineStart:
    """The start line and backend options for `backend`; exits 2 on a `--dtype` that
    is unknown or given to a backend that has no dtype."""
    if backend is not BackendName.VLLM:
        if dtype is not None:
            _refuse(f"--dtype is for the in-process engine (--backend vllm), not {backend}")
        return EngineStart(f"starting the {backend} engine…")
    try:
        choice = choose_engine_dtype(dtype)
    except DtypeError as exc:
        _refuse(str(exc))
    return EngineStart(
        f"starting the vllm engine in {choice.describe()}…", {"dtype": choice.dtype}
    )


def _refuse(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)
