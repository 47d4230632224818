"""`taskloom bench --engine URL` on the session's real vLLM server (the embedded model):
the benchmark's calls go to the engine that answers, none to the one that is down."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom.cli import app

pytestmark = [pytest.mark.openai_server, pytest.mark.timeout(900)]


def test_a_benchmark_runs_on_the_real_server_of_two_engines_given(
    tmp_path: Path, vllm_server: str
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    done = CliRunner().invoke(app, [
        "bench", "run", "chat", "--programs", "3", "--rate", "2", "--policy", "fcfs,plas",
        "--max-context-tokens", "256", "--max-output-tokens", "6", "--no-progress",
        "--engine", vllm_server, "--engine", down, "-o", str(tmp_path)])
    assert done.exit_code == 0, done.stdout + done.stderr
    rows = json.loads((tmp_path / "results.json").read_text())
    assert [row["policy"] for row in rows] == ["fcfs", "plas"]
    for row in rows:
        assert row["failed_programs"] == 0 and row["llm_calls"] >= 3
        assert row["engine_names"] == [vllm_server, down]
        assert row["calls_per_engine"] == [row["llm_calls"], 0]
        assert 0 < row["generated_tokens"] <= 6 * row["llm_calls"]
