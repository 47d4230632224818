"""A traced run on the embedded vLLM engine: the spans carry the engine's real token
counts (the same the run result reports), and the served model's name."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.orchestrator.result import RunStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.telemetry import attributes as a
from taskloom.telemetry.otel import OtelTracer

SPEC = """
name: traced-engine
defaults: {max_tokens: 12, temperature: 0}
nodes:
  one: {kind: llm, prompt: "Name one colour."}
  each:
    kind: map
    over: ["red", "blue"]
    node: {kind: llm, prompt: "Name a fruit that is {{ item }}."}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.engine
async def test_spans_carry_the_engines_real_token_counts(engine: VLLMBackend) -> None:
    exporter = InMemorySpanExporter()
    tracer = OtelTracer.exporting(exporter, batch=False, default_model=engine.model)
    result = await Runtime(engine, tracer=tracer).run(loads(SPEC))
    tracer.close()
    assert result.status is RunStatus.SUCCEEDED, result.error
    calls = [s for s in exporter.get_finished_spans()
             if (s.attributes or {}).get(a.OPERATION) == "chat"]
    assert len(calls) == 3
    by_node: dict[str, list[dict[str, object]]] = {"one": [], "each": []}
    for span in calls:
        attrs = dict(span.attributes or {})
        assert attrs[a.REQUEST_MODEL] == engine.model
        assert attrs[a.ENGINE_NAME] == "vllm"
        assert 0 < _count(attrs[a.OUTPUT_TOKENS]) <= 12
        assert _count(attrs[a.INPUT_TOKENS]) > 5
        by_node[str(attrs[a.THREAD_ID]).split("[")[0].split("/")[0]].append(attrs)
    for node_id, spans in by_node.items():
        node = result.nodes[node_id]
        assert sum(_count(s[a.INPUT_TOKENS]) for s in spans) == node.prompt_tokens
        assert sum(_count(s[a.OUTPUT_TOKENS]) for s in spans) == node.generated_tokens
        assert sum(_count(s[a.CACHE_READ_TOKENS]) for s in spans) == node.cached_prompt_tokens


def _count(value: object) -> int:
    assert isinstance(value, int)
    return value
