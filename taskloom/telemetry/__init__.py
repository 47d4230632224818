"""Traces of runs: OpenTelemetry spans with the GenAI semantic conventions.

Only the seam is imported here; the OpenTelemetry SDK is imported when a tracer is
opened (`open_tracer`), so a run without tracing never loads it.
"""

from taskloom.telemetry.setup import open_tracer, served_model, tracing_requested
from taskloom.telemetry.tracer import NO_TRACER, NoTracer, RunTrace, TaskTrace, Tracer

__all__ = [
    "NO_TRACER",
    "NoTracer",
    "RunTrace",
    "TaskTrace",
    "Tracer",
    "open_tracer",
    "served_model",
    "tracing_requested",
]
