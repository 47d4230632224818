"""Hostile and malformed command lines: each gets the README's exit code and one line
saying what is wrong, never a traceback (issue 13, point 7).

None of these starts an engine. A run that gets past the option checks is pointed at
an OpenAI server on a closed port, so that the old behaviour (accept, then fail at the
engine) ends quickly instead of loading vLLM.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

import taskloom.runtime as runtime_module
from taskloom.backends.base import Backend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.cli import app

runner = CliRunner()

NO_ENGINE = ("--backend", "openai", "--base-url", "http://127.0.0.1:1", "--no-save")

SPEC = """\
name: edges
inputs:
  count: {type: integer, default: 1}
  ratio: {type: number, default: 0.5}
nodes:
  total: {kind: tool, tool: calculator, args: {expression: "{{ inputs.count }} + 1"}}
outputs:
  total: "{{ total }}"
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "edges.yaml"
    path.write_text(SPEC)
    return path


def _one_error_line(result: Result, code: int) -> str:
    """The exit code is `code`, nothing was raised, and stderr says why in one line."""
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"raised {result.exception!r}"
    )
    assert result.exit_code == code, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def test_a_5000_digit_input_is_refused_with_exit_2(spec: Path) -> None:
    result = runner.invoke(app, ["run", str(spec), "-i", "count=" + "9" * 5000, *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert line.startswith("error: -i count:") and "5000 digits" in line


def test_an_input_beyond_a_floats_range_is_refused(spec: Path) -> None:
    result = runner.invoke(app, ["run", str(spec), "-i", "ratio=1e999", *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert "-i ratio" in line and "range" in line


def test_nan_given_with_dash_i_is_text_not_a_number(spec: Path) -> None:
    # Strict JSON has no NaN, so the value is the string "NaN", which `ratio` refuses.
    result = runner.invoke(app, ["run", str(spec), "-i", "ratio=NaN", *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert "input 'ratio'" in line and "'NaN' is not of type 'number'" in line


def test_a_non_utf8_inputs_file_is_refused(spec: Path, tmp_path: Path) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_bytes(b'\xff\xfe{"count": 2}')
    result = runner.invoke(app, ["run", str(spec), "--inputs", str(inputs), *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert "not UTF-8" in line and "in.json" in line


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"ratio": NaN}', "NaN is not JSON"),
        ('{"ratio": Infinity}', "Infinity is not JSON"),
        ('{"count": ' + "1" * 5000 + "}", "5000 digits"),
        ("[" * 100_000, "nested too deeply"),
    ],
    ids=["nan", "infinity", "huge-int", "deep"],
)
def test_an_inputs_file_with_json_no_run_can_use_is_refused(
    spec: Path, tmp_path: Path, content: str, expected: str
) -> None:
    inputs = tmp_path / "in.json"
    inputs.write_text(content)
    result = runner.invoke(app, ["run", str(spec), "--inputs", str(inputs), *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert expected in line


@pytest.mark.parametrize("timeout", ["nan", "0", "-5", "inf", "-inf"])
def test_a_timeout_that_is_not_a_positive_number_is_refused(spec: Path, timeout: str) -> None:
    result = runner.invoke(app, ["run", str(spec), "--timeout", timeout, *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert "--timeout must be a positive number of seconds" in line


@pytest.mark.parametrize("command", ["validate", "run", "graph"])
def test_an_allowed_host_with_a_bad_port_is_refused(
    spec: Path, tmp_path: Path, command: str
) -> None:
    extra = {"run": list(NO_ENGINE), "graph": ["-o", str(tmp_path / "g.mmd")]}.get(command, [])
    result = runner.invoke(app, [command, str(spec), "--allow-host", "host:abc", *extra])
    line = _one_error_line(result, 2)
    assert "--allow-host" in line and "'host:abc'" in line


def test_the_openai_backend_without_a_base_url_is_refused(spec: Path) -> None:
    result = runner.invoke(app, ["run", str(spec), "--backend", "openai", "--no-save"])
    line = _one_error_line(result, 2)
    assert "--base-url" in line


def test_a_dtype_for_a_backend_without_one_is_refused(spec: Path) -> None:
    result = runner.invoke(app, ["run", str(spec), "--dtype", "float32", *NO_ENGINE])
    line = _one_error_line(result, 2)
    assert "--dtype" in line and "--backend vllm" in line


def test_an_unknown_dtype_is_refused_before_the_engine_starts(spec: Path) -> None:
    result = runner.invoke(app, ["run", str(spec), "--dtype", "fp4", "--no-save"])
    line = _one_error_line(result, 2)
    assert "unknown dtype 'fp4'" in line and "float32" in line


def test_graph_into_a_missing_folder_is_refused_and_creates_nothing(
    spec: Path, tmp_path: Path
) -> None:
    output = tmp_path / "missing" / "deeper" / "g.mmd"
    result = runner.invoke(app, ["graph", str(spec), "-o", str(output)])
    line = _one_error_line(result, 2)
    assert "does not exist" in line and str(output.parent) in line
    assert not (tmp_path / "missing").exists()


def test_graph_onto_a_folder_is_refused(spec: Path, tmp_path: Path) -> None:
    folder = tmp_path / "g.mmd"
    folder.mkdir()
    result = runner.invoke(app, ["graph", str(spec), "-o", str(folder)])
    line = _one_error_line(result, 2)
    assert "cannot write" in line


def test_validate_locates_an_input_items_schema_that_is_not_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "items.yaml"
    path.write_text(
        "name: items\n"
        "inputs:\n"
        "  cities: {type: array, items: {type: 42}}\n"
        "nodes:\n"
        "  one: {kind: tool, tool: calculator, args: {expression: '1'}}\n"
    )
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 1, result.output
    assert f"{path}:3:" in result.output and "not a valid JSON schema" in result.output


def _strict_loads(text: str) -> Any:
    def refuse(constant: str) -> Any:
        raise ValueError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_json_output_is_strict_json_when_a_value_is_not_finite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A model may answer a number too big for a float; Python parses it as inf.
    def scripted(name: str, **_: Any) -> Backend:
        return ScriptedBackend(respond=lambda request: "1e999")

    monkeypatch.setattr(runtime_module, "open_backend", scripted)
    path = tmp_path / "inf.yaml"
    path.write_text(
        "name: inf\n"
        "nodes:\n"
        "  guess: {kind: llm, prompt: 'A big number', output_schema: {type: number}}\n"
        "outputs:\n"
        "  guess: '{{ guess }}'\n"
    )
    result = runner.invoke(app, ["run", str(path), "--json", *NO_ENGINE])
    assert result.exit_code == 0, result.output
    payload = _strict_loads(result.stdout)
    assert payload["outputs"] == {"guess": "Infinity"}
    assert payload["nodes"]["guess"]["output"] == "Infinity"
