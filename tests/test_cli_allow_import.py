"""`--allow-import` on validate, run and graph: the only way to widen which modules a
spec's `module:function` tools may import (besides modules beside the spec)."""

from __future__ import annotations

import sys
from pathlib import Path

from typer.testing import CliRunner

from taskloom.cli import app

runner = CliRunner()


def _spec(tmp_path: Path, tool: str) -> Path:
    spec = tmp_path / "spec.yaml"
    spec.write_text(f'name: p\nnodes:\n  t: {{kind: tool, tool: "{tool}", args: {{}}}}\n')
    return spec


def test_validate_refuses_an_untrusted_module_naming_the_flag(tmp_path: Path) -> None:
    sys.modules.pop("this", None)
    result = runner.invoke(app, ["validate", str(_spec(tmp_path, "this:x"))])
    assert result.exit_code == 1
    assert f"{tmp_path / 'spec.yaml'}:3:25: node 't': unknown tool 'this:x'" in result.output
    assert "--allow-import this" in result.output
    assert "Beautiful is better than ugly" not in result.output
    assert "this" not in sys.modules


def test_graph_refuses_too_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "g.mmd"
    spec = _spec(tmp_path, "taskloom.cli:graph")
    result = runner.invoke(app, ["graph", str(spec), "-o", str(out)])
    assert result.exit_code == 1
    assert "--allow-import taskloom" in result.output
    assert not out.exists()


def test_allow_import_trusts_the_named_module(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "taskloom.naming:did_you_mean")
    refused = runner.invoke(app, ["validate", str(spec)])
    assert refused.exit_code == 1
    allowed = runner.invoke(app, ["validate", str(spec), "--allow-import", "taskloom.naming"])
    # Trusted now, so the check moves on to the tool's own arguments.
    assert "missing required argument 'word'" in allowed.output
    assert "not trusted" not in allowed.output


def test_a_malformed_allow_import_is_a_usage_error(tmp_path: Path) -> None:
    spec = _spec(tmp_path, "email.utils:quote")
    result = runner.invoke(app, ["validate", str(spec), "--allow-import", "email:utils"])
    assert result.exit_code == 2
    assert "not a module name" in result.output
