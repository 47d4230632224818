"""`taskloom run --engine URL ...` against small OpenAI-compatible servers the tests start
(`fake_openai_server`), so that several engines and their failures need no vLLM."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
from fake_openai_server import FakeOpenAIServer
from typer.testing import CliRunner

from taskloom.cli import app
from taskloom.orchestrator.store import RunStore

runner = CliRunner()

FAN_OUT = "name: fan_out\nnodes:\n" + "".join(
    f"  q{i}: {{kind: llm, prompt: \"Question {i}: {'why ' * i}?\", max_tokens: 8}}\n"
    for i in range(8)
) + "outputs:\n  first: \"{{ q0 }}\"\n"

TWO_STEPS = """
name: two_steps
nodes:
  first: {kind: llm, prompt: "Say hi", max_tokens: 8}
  second: {kind: llm, prompt: "Again: {{ first }}", max_tokens: 8}
outputs:
  answer: "{{ second }}"
"""


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def run_cli(tmp_path: Path, spec_text: str, *args: str) -> tuple[int, str, str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    done = runner.invoke(app, ["run", str(spec), "--json", *args],
                         env={"TASKLOOM_HOME": str(tmp_path / "home")})
    return done.exit_code, done.stdout, done.stderr


def test_eight_parallel_calls_use_both_engines_and_the_json_reports_each(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer() as one, FakeOpenAIServer() as two:
        code, out, err = run_cli(tmp_path, FAN_OUT, "--engine", one.url, "--engine", two.url)
    assert code == 0, err
    report = json.loads(out)
    engines = report["engines"]["engines"]
    assert [e["name"] for e in engines] == [one.url, two.url]
    assert one.answered >= 1 and two.answered >= 1
    assert [e["calls"] for e in engines] == [one.answered, two.answered]
    assert sum(e["calls"] for e in engines) == 8
    assert all(e["in_service"] for e in engines) and report["engines"]["moves"] == []
    assert report["outputs"]["first"] == "you said 3 words"


def test_an_engine_that_is_down_from_the_start_is_left_out(tmp_path: Path) -> None:
    with FakeOpenAIServer() as up:
        code, out, err = run_cli(tmp_path, FAN_OUT, "--engine", closed_port_url(),
                                 "--engine", up.url)
    assert code == 0, err
    engines = json.loads(out)["engines"]["engines"]
    assert [e["in_service"] for e in engines] == [False, True]
    assert "cannot connect" in engines[0]["out_of_service_reason"]
    assert up.answered == 8


def test_when_every_engine_is_gone_the_run_exits_4_and_keeps_finished_nodes(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer(dies_after=1) as dying:
        code, out, err = run_cli(tmp_path, TWO_STEPS, "--engine", dying.url,
                                 "--engine", closed_port_url())
    assert code == 4, err
    report = json.loads(out)
    assert report["status"] == "failed"
    assert report["error"].startswith("engine error: every engine is out of service")
    assert report["engines"]["every_engine_lost"] is True
    assert report["nodes"]["first"]["status"] == "succeeded"
    store = RunStore(tmp_path / "home" / "taskloom.db")
    kept = store.finished_nodes(report["run_id"], ["first", "second"])
    store.close()
    assert kept["first"].output == "you said 2 words"


def test_no_engine_answering_at_the_start_is_an_engine_error(tmp_path: Path) -> None:
    code, _, err = run_cli(tmp_path, TWO_STEPS, "--engine", closed_port_url(),
                           "--engine", closed_port_url())
    assert code == 4
    assert "engine error: no engine answers" in err


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--base-url", "http://127.0.0.1:1"], "--engine and --base-url do not mix"),
        (["--backend", "sim"], "--backend sim has none"),
    ],
)
def test_engine_urls_refuse_options_that_contradict_them(
    tmp_path: Path, options: list[str], message: str
) -> None:
    code, _, err = run_cli(tmp_path, TWO_STEPS, "--engine", "http://127.0.0.1:1", *options)
    assert code == 2 and message in err
