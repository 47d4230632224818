"""Which tracer a command or a runtime gets: OTLP when asked for (`--trace`), or when
the standard OTLP endpoint variable is set and nobody said no; else none."""

from __future__ import annotations

import os

from taskloom.telemetry.tracer import NO_TRACER, Tracer

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


def tracing_requested(trace: bool | None) -> bool:
    """`trace` when given; None: whether an OTLP endpoint is set in the environment."""
    if trace is not None:
        return trace
    return any(os.environ.get(name) for name in ENDPOINT_VARIABLES)


def served_model(engine: object) -> str | None:
    """The model an engine serves, where it says (the embedded engine's folder)."""
    model = getattr(engine, "model", None)
    return model if isinstance(model, str) and model else None


def open_tracer(
    trace: bool | None = None, *, endpoint: str | None = None, default_model: str | None = None
) -> Tracer:
    """An OTLP/HTTP tracer if `tracing_requested(trace)`, else `NO_TRACER`. `endpoint`:
    a full `.../v1/traces` URL; None: the environment's, else localhost:4318. Close it
    (`close()`) to send what is still buffered."""
    if not tracing_requested(trace):
        return NO_TRACER
    # Imported here on purpose: a run without tracing never loads the OpenTelemetry SDK.
    from taskloom.telemetry.otel import OtelTracer

    return OtelTracer.to_otlp(endpoint, default_model=default_model)
