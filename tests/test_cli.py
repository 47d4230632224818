"""The command line: validate, graph, argument errors; and every example spec, checked
by `taskloom validate` and run as written on the session's embedded engine."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom import NodeStatus, RunStatus, load, run_program
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.cli import app

SPECS = Path(__file__).parent.parent / "specs"
EXAMPLE_SPECS = sorted(SPECS.glob("*.yaml"))
runner = CliRunner()


def test_the_example_specs_are_found() -> None:
    assert EXAMPLE_SPECS, f"no *.yaml under {SPECS}"


@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=lambda path: path.stem)
def test_validate_accepts_every_example_spec(spec: Path) -> None:
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output and "critical path" in result.output


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=lambda path: path.stem)
async def test_every_example_spec_runs_as_written(
    spec: Path, engine: VLLMBackend, anyio_backend: str
) -> None:
    # The 135M model's answers are not judged (tests/test_specs_e2e.py checks each
    # spec's own structure); here each spec, with its default inputs, must run through.
    program = load(spec)
    result = await run_program(program, backend=engine)
    assert result.status is RunStatus.SUCCEEDED, result.error
    assert set(result.outputs) == set(program.outputs)
    statuses = {result.nodes[node_id].status for node_id in program.nodes}
    assert NodeStatus.SUCCEEDED in statuses
    assert statuses <= {NodeStatus.SUCCEEDED, NodeStatus.SKIPPED}  # skipped by a `when`
    assert result.llm_calls > 0 and result.generated_tokens > 0


def test_validate_reports_file_line_column_and_exits_1(tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(
        "name: bad\n"
        "nodes:\n"
        "  a:\n"
        "    kind: llm\n"
        "    promt: hello\n"
    )
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert f"{spec}:5:5:" in result.output
    assert "prompt" in result.output  # the did-you-mean


def test_validate_names_a_cycle(tmp_path: Path) -> None:
    spec = tmp_path / "cycle.yaml"
    spec.write_text(
        "name: c\n"
        "nodes:\n"
        "  a: {kind: llm, prompt: '{{ b }}'}\n"
        "  b: {kind: llm, prompt: '{{ a }}'}\n"
    )
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert "a -> b -> a" in result.output


def test_validate_refuses_an_unknown_tool_with_a_suggestion(tmp_path: Path) -> None:
    spec = tmp_path / "tool.yaml"
    spec.write_text("name: t\nnodes:\n  x: {kind: tool, tool: calculater, args: {}}\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == 1
    assert "calculator" in result.output
    assert f"{spec}:3:" in result.output


def test_validate_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 1
    assert "nope.yaml" in result.output


@pytest.mark.parametrize(
    ("suffix", "marker"), [(".mmd", "flowchart TD"), (".dot", "digraph")]
)
def test_graph_writes_text_formats(tmp_path: Path, suffix: str, marker: str) -> None:
    out = tmp_path / f"g{suffix}"
    result = runner.invoke(app, ["graph", str(SPECS / "quickstart.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert marker in text
    assert "advantage" in text and "summary" in text


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_graph_draws_images(tmp_path: Path, suffix: str) -> None:
    out = tmp_path / f"g{suffix}"
    result = runner.invoke(app, ["graph", str(SPECS / "conditional.yaml"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    head = out.read_bytes()[:64]
    assert head.startswith(b"\x89PNG") if suffix == ".png" else b"<svg" in out.read_bytes()


def test_graph_refuses_an_unknown_format(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["graph", str(SPECS / "quickstart.yaml"), "-o", str(tmp_path / "g.gif")]
    )
    assert result.exit_code == 2
    assert ".mmd" in result.output


def test_run_refuses_a_malformed_input_pair() -> None:
    result = runner.invoke(app, ["run", str(SPECS / "quickstart.yaml"), "-i", "topic"])
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_run_refuses_an_inputs_file_that_is_not_an_object(tmp_path: Path) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_text("[1, 2]")
    result = runner.invoke(
        app, ["run", str(SPECS / "quickstart.yaml"), "--inputs", str(inputs)]
    )
    assert result.exit_code == 2
    assert "JSON object" in result.output


def test_help_teaches_the_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("validate", "run", "graph"):
        assert command in result.output


def test_run_refuses_inputs_of_the_wrong_type_before_starting_an_engine() -> None:
    result = runner.invoke(app, ["run", str(SPECS / "quickstart.yaml"), "-i", "panels=many"])
    assert result.exit_code == 2
    assert "input 'panels'" in result.output and "integer" in result.output


def test_run_refuses_an_unknown_input_with_a_suggestion() -> None:
    result = runner.invoke(app, ["run", str(SPECS / "quickstart.yaml"), "-i", "topik=x"])
    assert result.exit_code == 2
    assert "did you mean 'topic'" in result.output


def test_run_refuses_an_unknown_policy_and_lists_the_known_ones() -> None:
    result = runner.invoke(app, ["run", str(SPECS / "quickstart.yaml"), "--policy", "fastest"])
    assert result.exit_code == 2
    assert "unknown scheduling policy 'fastest'" in result.output and "fcfs" in result.output


def test_run_refuses_a_sample_pool_of_no_slots() -> None:
    result = runner.invoke(
        app, ["run", str(SPECS / "self_consistency.yaml"), "--sample-slots", "0"]
    )
    assert result.exit_code == 2
    assert "Invalid value for '--sample-slots'" in result.output


def test_run_refuses_the_openai_backend_without_a_base_url_in_one_line() -> None:
    result = runner.invoke(
        app, ["run", str(SPECS / "quickstart.yaml"), "--backend", "openai", "--no-save"]
    )
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        "error: the openai backend needs a server URL: pass --base-url (base_url=), "
        "e.g. http://127.0.0.1:8000"
    ]
