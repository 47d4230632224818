"""`taskloom run` sends spans over OTLP when asked (`--trace`), or when the standard
endpoint variable is set; with neither, nothing is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom.cli import app
from taskloom.telemetry.receiver import OtlpReceiver

runner = CliRunner()
SPEC = """
name: cli-traced
nodes:
  ask: {kind: llm, prompt: "Say ok."}
  sum: {kind: tool, tool: calculator, args: {expression: "1 + 2"}}
"""


@pytest.fixture
def spec(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    path = tmp_path / "traced.yaml"
    path.write_text(SPEC)
    return path


def _run(spec: Path, *extra: str) -> None:
    result = runner.invoke(app, ["run", str(spec), "--backend", "scripted", "--no-save",
                                 "--json", *extra])
    assert result.exit_code == 0, result.output


def test_the_endpoint_variable_turns_tracing_on(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        # The standard variable names the collector's base URL; /v1/traces is added.
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint.removesuffix(
            "/v1/traces"))
        _run(spec)
        names = sorted(span.name for span in receiver.spans())
    assert names == ["chat", "execute_tool calculator", "invoke_workflow cli-traced",
                     "node ask", "node sum"]


def test_trace_flag_sends_to_the_traces_endpoint(
    spec: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with OtlpReceiver() as receiver:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", receiver.endpoint)
        _run(spec, "--trace")
        assert len(receiver.spans()) == 5


def test_without_flag_or_variable_nothing_is_sent(spec: Path) -> None:
    with OtlpReceiver() as receiver:
        _run(spec)
    assert receiver.requests == []
