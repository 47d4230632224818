"""A server over several engines (`taskloom serve --engine A --engine B`): one runtime
over both, and each engine's health and load in /metrics."""

from __future__ import annotations

from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from prometheus_client import generate_latest

from taskloom.program.load import loads
from taskloom.serve.config import ServeConfig
from taskloom.serve.services import open_services

FAN_OUT = loads("name: fan\nnodes:\n" + "".join(
    f"  q{i}: {{kind: llm, prompt: \"question {i}\", max_tokens: 8}}\n" for i in range(4)
) + "outputs: {a: \"{{ q0 }}\"}\n")


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_metrics_show_each_engines_health_and_load(
    anyio_backend: str, tmp_path: Path
) -> None:
    with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        config = ServeConfig(backend="openai", engines=(one.url, two.url),
                             store=tmp_path / "store.db")
        async with open_services(config) as services:
            result = await services.runtime.run(FAN_OUT)
            metrics = generate_latest(services.metrics.registry).decode()
    assert result.status.value == "succeeded"
    for index, server in enumerate((one, two)):
        labels = f'engine="{index}",url="{server.url}"'
        assert f"taskloom_engine_in_service{{{labels}}} 1.0" in metrics
        assert f"taskloom_engine_calls_total{{{labels}}} {float(server.answered)}" in metrics
    assert one.answered + two.answered == 4 and one.answered and two.answered
    assert "taskloom_call_moves_total 0.0" in metrics
    assert 'taskloom_tokens_total{kind="generated"}' in metrics  # each engine is metered
