"""The OpenTelemetry tracer: a run's spans, with the GenAI semantic conventions.

The tree: `invoke_workflow PROGRAM` (the run) holds `node ID` (each node, current while
it runs), which holds `chat MODEL` or `text_completion MODEL` (each LLM call, planners'
and votes' included) and `execute_tool TOOL` (a tool node's call, each map item's, each
plan task's). Parents come from OpenTelemetry's context, which anyio's tasks inherit:
a node's calls are made in tasks started inside it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import aclosing, contextmanager
from typing import TYPE_CHECKING, Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.trace import Span, SpanKind, Status, StatusCode

from taskloom.backends.base import Chunk, GenerateRequest
from taskloom.orchestrator.result import NodeResult, NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.scheduler.call_reports import CallReport, call_watch_of
from taskloom.telemetry import attributes as a
from taskloom.telemetry.tracer import RunTrace, TaskTrace

if TYPE_CHECKING:
    from taskloom.orchestrator.scheduler.base import Scheduler

# A traced 10,000-node run makes 20,000 spans faster than one exporter thread sends
# them; the SDK's default queue (2,048) would drop most of them.
MAX_QUEUED_SPANS = 1 << 16
EXPORT_TIMEOUT_S = 5


class OtelTracer:
    """Spans into `provider`. `default_model` names the model of calls that name none
    (the engine's one model)."""

    enabled = True

    def __init__(self, provider: TracerProvider, *, default_model: str | None = None) -> None:
        self.provider = provider
        self.default_model = default_model
        self._tracer = provider.get_tracer("taskloom")

    @classmethod
    def exporting(
        cls, exporter: SpanExporter, *, batch: bool = True, default_model: str | None = None
    ) -> OtelTracer:
        """A tracer with its own provider; `batch`: export from a background thread
        (else each span is exported as it ends, in the caller's thread)."""
        provider = TracerProvider(resource=Resource.create({"service.name": "taskloom"}))
        processor = (
            BatchSpanProcessor(exporter, max_queue_size=MAX_QUEUED_SPANS)
            if batch else SimpleSpanProcessor(exporter)
        )
        provider.add_span_processor(processor)
        return cls(provider, default_model=default_model)

    @classmethod
    def to_otlp(
        cls, endpoint: str | None = None, *, default_model: str | None = None
    ) -> OtelTracer:
        """OTLP over HTTP to `endpoint` (a full `.../v1/traces` URL); None: where the
        OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables say, else localhost:4318."""
        exporter = OTLPSpanExporter(endpoint=endpoint, timeout=EXPORT_TIMEOUT_S)
        return cls.exporting(exporter, default_model=default_model)

    @contextmanager
    def run(self, run_id: str, program: str) -> Iterator[RunTrace]:
        attributes = {a.OPERATION: a.INVOKE_WORKFLOW, a.WORKFLOW_NAME: program, a.RUN_ID: run_id}
        with self._tracer.start_as_current_span(
            f"{a.INVOKE_WORKFLOW} {program}", attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            trace = _RunSpan(span)
            try:
                yield trace
            except Exception as exc:
                trace.done = True
                span.set_attribute(a.RUN_STATUS, RunStatus.FAILED.value)
                _failed(span, exc)
                raise
            finally:
                if not trace.done:  # left by a cancellation (a timeout, Ctrl-C, a cancel)
                    span.set_attribute(a.RUN_STATUS, RunStatus.CANCELLED.value)

    @contextmanager
    def node(
        self, run_id: str, node_id: str, kind: str, result: Callable[[], NodeResult]
    ) -> Iterator[None]:
        attributes = {a.RUN_ID: run_id, a.NODE_ID: node_id, a.NODE_KIND: kind}
        with self._tracer.start_as_current_span(
            f"node {node_id}", attributes=attributes,
            record_exception=False, set_status_on_exception=False,
        ) as span:
            try:
                yield
            finally:
                _record_node(span, result())

    @contextmanager
    def tool_call(self, tool: str, node_id: str) -> Iterator[None]:
        # A leaf: never made current, which spares a context switch per tool call.
        span = self._tracer.start_span(
            f"{a.EXECUTE_TOOL} {tool}", attributes=_tool_attributes(tool, node_id)
        )
        try:
            yield
        except Exception as exc:
            _failed(span, exc)
            raise
        except BaseException:
            span.set_attribute(a.CALL_OUTCOME, "cancelled")
            raise
        finally:
            span.end()

    def task(self, task_id: str, tool: str) -> TaskTrace:
        span = self._tracer.start_span(
            f"{a.EXECUTE_TOOL} {tool}", attributes=_tool_attributes(tool, task_id)
        )
        return _TaskSpan(span)

    def scheduler(self, scheduler: Scheduler) -> Scheduler:
        return TracedScheduler(scheduler, self, self.default_model)

    def start_call(self, name: str, attributes: dict[str, Any]) -> Span:
        return self._tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)

    def close(self) -> None:
        self.provider.shutdown()


class _RunSpan:
    def __init__(self, span: Span) -> None:
        self.span = span
        self.done = False

    def finished(self, result: RunResult) -> None:
        self.done = True
        self.span.set_attribute(a.RUN_STATUS, result.status.value)
        if result.status is RunStatus.FAILED:
            self.span.set_status(Status(StatusCode.ERROR, result.error))


class _TaskSpan:
    def __init__(self, span: Span) -> None:
        self.span = span

    def finished(self, result: NodeResult) -> None:
        self.span.set_attribute(a.NODE_STATUS, result.status.value)
        if result.status is NodeStatus.FAILED:
            self.span.set_attribute(a.ERROR_TYPE, "_OTHER")  # the convention's "unknown"
            self.span.set_status(Status(StatusCode.ERROR, result.error))
        self.span.end()


class TracedScheduler:
    """`inner`, with each LLM call a span: the request's settings as it is submitted,
    the last chunk's token counts and the scheduler's report of the call as it ends."""

    def __init__(self, inner: Scheduler, tracer: OtelTracer, default_model: str | None) -> None:
        self.inner = inner
        self.sample_allocator = getattr(inner, "sample_allocator", None)  # see allocator_of
        self._tracer = tracer
        self._default_model = default_model
        self._watch = call_watch_of(inner)

    async def submit(self, request: GenerateRequest) -> AsyncGenerator[Chunk, None]:
        operation = a.CHAT if request.messages is not None else a.TEXT_COMPLETION
        model = request.model or self._default_model
        span = self._tracer.start_call(
            f"{operation} {model}" if model else operation,
            _request_attributes(request, operation, model),
        )
        reports: list[CallReport] = []
        heard = reports.append
        if self._watch is not None:
            self._watch.watch(request.call_id, heard)
        started = time.perf_counter()
        last: Chunk | None = None
        outcome = "finished"
        try:
            async with aclosing(self.inner.submit(request)) as stream:
                async for chunk in stream:
                    if last is None:
                        span.set_attribute(a.TIME_TO_FIRST_CHUNK, time.perf_counter() - started)
                    last = chunk
                    yield chunk
        except GeneratorExit:
            outcome = "aborted"  # the consumer stopped reading (a plan's join, a vote's stop)
            raise
        except Exception as exc:
            outcome = "failed"
            _failed(span, exc)
            raise
        except BaseException:
            outcome = "cancelled"
            raise
        finally:
            if self._watch is not None:
                self._watch.unwatch(request.call_id, heard)
            span.set_attribute(a.CALL_OUTCOME, outcome)
            _record_call(span, last, reports[0] if reports else None)
            span.end()

    async def close(self) -> None:
        await self.inner.close()


def _request_attributes(
    request: GenerateRequest, operation: str, model: str | None
) -> dict[str, Any]:
    sampling = request.sampling
    attributes: dict[str, Any] = {
        a.OPERATION: operation,
        a.MAX_TOKENS: sampling.max_tokens,
        a.TEMPERATURE: sampling.temperature,
        a.TOP_P: sampling.top_p,
        a.OUTPUT_TYPE: "json" if request.json_schema_text is not None else "text",
        a.CALL_ID: request.call_id,
        a.RUN_ID: request.program_id,
        a.THREAD_ID: request.thread_id,
    }
    if model:
        attributes[a.REQUEST_MODEL] = model
    if sampling.seed is not None:
        attributes[a.SEED] = sampling.seed
    return attributes


def _record_call(span: Span, last: Chunk | None, report: CallReport | None) -> None:
    if last is not None:
        span.set_attributes({
            a.INPUT_TOKENS: last.prompt_tokens,
            a.OUTPUT_TOKENS: last.generated_tokens,
            a.CACHE_READ_TOKENS: last.cached_prompt_tokens,
            a.PREFIX_HIT_TOKENS: last.cached_prompt_tokens,
        })
        if last.finish_reason:
            span.set_attribute(a.FINISH_REASONS, (last.finish_reason,))
    if report is not None:
        span.set_attributes({
            a.QUEUE_WAIT_S: report.queued_s,
            a.SERVICE_S: report.service_s,
            a.PRIORITY: report.priority,
            a.LEVEL: report.level,
            a.PREEMPTIONS: report.preemptions,
        })
        if report.engine is not None and report.engine_name is not None:
            span.set_attributes({
                a.ENGINE: report.engine,
                a.ENGINE_NAME: report.engine_name,
                a.PROVIDER: report.engine_name,
            })


def _record_node(span: Span, result: NodeResult) -> None:
    span.set_attributes({
        a.NODE_STATUS: result.status.value,
        a.NODE_ATTEMPTS: result.attempts,
        a.NODE_LLM_CALLS: result.llm_calls,
        a.NODE_PROMPT_TOKENS: result.prompt_tokens,
        a.NODE_GENERATED_TOKENS: result.generated_tokens,
        a.NODE_CACHED_TOKENS: result.cached_prompt_tokens,
    })
    if result.error is not None:
        span.set_attribute(a.NODE_ERROR, result.error)
    if result.status is NodeStatus.FAILED:
        span.set_status(Status(StatusCode.ERROR, result.error))


def _tool_attributes(tool: str, call_id: str) -> dict[str, Any]:
    return {a.OPERATION: a.EXECUTE_TOOL, a.TOOL_NAME: tool, a.TOOL_CALL_ID: call_id,
            a.NODE_ID: call_id}


def _failed(span: Span, exc: BaseException) -> None:
    span.set_attribute(a.ERROR_TYPE, type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, str(exc) or type(exc).__name__))
