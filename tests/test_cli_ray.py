"""`--ray`, `--ray-address` and `--replicas` on `taskloom run` and `taskloom serve`: options
that do not mix exit 2 with a message, before any engine or Ray starts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from taskloom.cli import app

runner = CliRunner()
SPEC = "name: one\nnodes:\n  q: {kind: llm, prompt: hi}\noutputs: {a: \"{{ q }}\"}\n"


@pytest.mark.parametrize(("args", "message"), [
    (["--replicas", "2"], "--ray-address and --replicas are for --ray: add --ray"),
    (["--ray-address", "auto"], "--ray-address and --replicas are for --ray"),
    (["--ray", "--replicas", "0"], "--replicas must be at least 1, got 0"),
    (["--ray", "--engine", "http://127.0.0.1:9"], "--ray and --engine do not mix"),
    (["--ray", "--backend", "openai", "--base-url", "http://127.0.0.1:9"],
     "an OpenAI server is not a replica"),
])
@pytest.mark.parametrize("command", ["run", "serve"])
def test_ray_options_that_do_not_mix_exit_2_before_anything_starts(
        tmp_path: Path, command: str, args: list[str], message: str) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    target = [str(spec)] if command == "run" else ["--store", str(tmp_path / "s.db")]
    done = runner.invoke(app, [command, *target, *args],
                         env={"TASKLOOM_HOME": str(tmp_path / "home")})
    assert done.exit_code == 2, done.output
    assert message in done.stderr


def test_the_help_teaches_the_ray_spelling() -> None:
    done = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert done.exit_code == 0
    for option in ("--ray", "--ray-address", "--replicas"):
        assert option in done.stdout


def test_run_with_ray_spreads_a_spec_over_two_scripted_replicas(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: two\nnodes:\n  a: {kind: llm, prompt: hi}\n"
                    "  b: {kind: llm, prompt: there}\noutputs: {a: \"{{ a }}\", b: \"{{ b }}\"}\n")
    done = runner.invoke(app, ["run", str(spec), "--json", "--backend", "scripted", "--ray",
                               "--replicas", "2"],
                         env={"TASKLOOM_HOME": str(tmp_path / "home")})
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["outputs"] == {"a": "ok", "b": "ok"}  # the scripted engine's answer
    engines = report["engines"]["engines"]
    assert [engine["name"] for engine in engines] == ["ray:replica-0", "ray:replica-1"]
    assert sum(engine["calls"] for engine in engines) == 2
    assert "ray:replica-1 ready after" in done.stderr  # a line as each engine is up
