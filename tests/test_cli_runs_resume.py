"""`taskloom resume` with the options `run` has: `--budget` (counting what the finished
nodes used), `--engine URL`s, and an engine error's exit 4 instead of a traceback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from taskloom.cli import app

runner = CliRunner()
CHAIN = """
name: chain
nodes:
  one: {kind: llm, prompt: "first", max_tokens: 4}
  two: {kind: llm, prompt: "second {{ one }}", max_tokens: 4}
  three: {kind: llm, prompt: "third {{ two }}", max_tokens: 4}
outputs: {last: "{{ three }}"}
"""


def taskloom(home: Path, *args: str) -> tuple[int, str, str]:
    done = runner.invoke(app, list(args), env={"TASKLOOM_HOME": str(home)})
    return done.exit_code, done.stdout, done.stderr


@pytest.fixture
def stopped_run(tmp_path: Path) -> tuple[Path, str]:
    """A run stopped by its budget after its first node: the store keeps `one`."""
    spec = tmp_path / "chain.yaml"
    spec.write_text(CHAIN)
    home = tmp_path / "home"
    code, out, err = taskloom(home, "run", str(spec), "--backend", "scripted", "--json",
                              "--budget", "llm_calls=1")
    assert code == 5, err
    result = json.loads(out)
    assert result["nodes"]["one"]["status"] == "succeeded"
    assert result["nodes"]["three"]["status"] != "succeeded"
    return home, result["run_id"]


def test_a_budget_on_resume_counts_the_nodes_that_had_finished(
    stopped_run: tuple[Path, str],
) -> None:
    home, run_id = stopped_run
    code, out, err = taskloom(home, "resume", run_id, "--backend", "scripted", "--json",
                              "--budget", "llm_calls=2")
    assert code == 5, err  # `one` counts: the second call crosses the limit of 2
    resumed = json.loads(out)
    assert resumed["status"] == "budget_exceeded"
    assert resumed["nodes"]["two"]["status"] == "succeeded"
    code, out, err = taskloom(home, "resume", run_id, "--backend", "scripted", "--json",
                              "--budget", "llm_calls=3")
    assert code == 0, err
    assert json.loads(out)["status"] == "succeeded"


def test_resume_on_engine_urls_uses_them_and_an_unreachable_one_is_exit_4(
    stopped_run: tuple[Path, str],
) -> None:
    home, run_id = stopped_run
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{probe.getsockname()[1]}"
    code, _, err = taskloom(home, "resume", run_id, "--engine", down)
    assert code == 4 and "engine error: no engine answers" in err, err
    assert "Traceback" not in err
    code, _, err = taskloom(home, "resume", run_id, "--engine", down, "--base-url", down)
    assert code == 2 and "do not mix" in err
    with FakeOpenAIServer() as server:
        code, out, err = taskloom(home, "resume", run_id, "--engine", server.url, "--json")
    assert code == 0, err
    resumed = json.loads(out)
    assert resumed["status"] == "succeeded"
    assert server.answered == 2  # `one` was kept; `two` and `three` ran on the server
    assert [engine["calls"] for engine in resumed["engines"]["engines"]] == [2]
