"""Spans sent over a real socket: the OTLP/HTTP exporter posts protobuf to a receiver the
test starts, which decodes it with `opentelemetry.proto`."""

from __future__ import annotations

import pytest

from taskloom.backends.scripted import ScriptedBackend
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.telemetry import attributes as a
from taskloom.telemetry.otel import OtelTracer
from taskloom.telemetry.receiver import OtlpReceiver, attribute_values
from taskloom.tools.registry import default_registry

SPEC = """
name: sent
nodes:
  ask: {kind: llm, prompt: "Name a river.", max_tokens: 8}
  twice: {kind: tool, tool: calculator, args: {expression: "2 * 21"}}
"""


@pytest.mark.anyio
async def test_spans_arrive_over_otlp_http_with_their_tree_and_attributes() -> None:
    with OtlpReceiver() as receiver:
        tracer = OtelTracer.to_otlp(receiver.endpoint, default_model="m")
        runtime = Runtime(ScriptedBackend(respond=lambda r: "the Nile"),
                          tools=default_registry(), tracer=tracer)
        result = await runtime.run(loads(SPEC))
        tracer.close()  # flushes the batch before the receiver stops
        spans = receiver.spans()
    by_name = {span.name: span for span in spans}
    assert sorted(by_name) == [
        "chat m", "execute_tool calculator", "invoke_workflow sent", "node ask", "node twice",
    ]
    run = by_name["invoke_workflow sent"]
    assert run.parent_span_id == b""
    for node in ("node ask", "node twice"):
        assert by_name[node].parent_span_id == run.span_id
    assert by_name["chat m"].parent_span_id == by_name["node ask"].span_id
    assert by_name["execute_tool calculator"].parent_span_id == by_name["node twice"].span_id
    assert {span.trace_id for span in spans} == {run.trace_id}
    chat = attribute_values(by_name["chat m"])
    assert chat[a.OPERATION] == "chat"
    assert chat[a.REQUEST_MODEL] == "m"
    assert chat[a.MAX_TOKENS] == 8
    assert chat[a.INPUT_TOKENS] == result.nodes["ask"].prompt_tokens > 0
    assert chat[a.OUTPUT_TOKENS] == result.nodes["ask"].generated_tokens == 2
    assert chat[a.FINISH_REASONS] == ["stop"]
    assert attribute_values(run)[a.RUN_STATUS] == "succeeded"
    resource = receiver.requests[0].resource_spans[0].resource
    assert {kv.key: kv.value.string_value for kv in resource.attributes}["service.name"] == (
        "taskloom"
    )


def test_a_path_other_than_v1_traces_is_refused() -> None:
    import httpx  # only this test needs a plain client

    with OtlpReceiver() as receiver:
        other = receiver.endpoint.replace("/v1/traces", "/v1/logs")
        assert httpx.post(other, content=b"").status_code == 404
    assert receiver.requests == []
