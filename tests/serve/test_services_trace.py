"""`taskloom serve --trace`: each run a client submits reaches the OTLP receiver as one
trace, sent by the server process before it exits."""

from __future__ import annotations

import pytest
from serve_harness import StartServer

from taskloom.client import Client
from taskloom.telemetry.receiver import OtlpReceiver

SPEC = """
name: served
nodes:
  say: {kind: llm, prompt: "Say ok."}
  add: {kind: tool, tool: calculator, args: {expression: "20 + 22"}}
"""


def test_a_traced_server_sends_every_runs_spans(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
        server = start_server("--trace")
        with Client(server.url) as client:
            run_ids = [client.submit(SPEC) for _ in range(2)]
            assert [client.wait(run_id)["status"] for run_id in run_ids] == ["succeeded"] * 2
        server.stop()  # a clean exit sends what is still buffered
        spans = receiver.spans()
    runs = [span for span in spans if span.name == "invoke_workflow served"]
    assert len(runs) == 2
    assert len({span.trace_id for span in spans}) == 2
    assert sorted(span.name for span in spans) == sorted(
        ["chat", "execute_tool calculator", "invoke_workflow served", "node add", "node say"] * 2
    )
