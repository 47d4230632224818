"""`taskloom show RUN_ID -o FILE` draws a stored run's timeline: PNG, SVG or HTML."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from taskloom.backends.base import GenerateRequest
from taskloom.backends.scripted import ScriptedBackend
from taskloom.cli import app
from taskloom.orchestrator.store import RunStore
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import default_registry

runner = CliRunner()
SPEC = """
name: pictured
nodes:
  ask: {kind: llm, prompt: "Say ok."}
  answer:
    kind: plan
    question: "What is 6 times 7, plus 1?"
    tools: [calculator]
    max_replans: 0
  after: {kind: tool, tool: calculator, args: {expression: "{{ answer }} + 1"}}
"""
PLAN = '1. calculator(expression="6 * 7")\n2. calculator(expression="$1 + 1")\n3. join()\n'


def _respond(request: GenerateRequest) -> str:
    if "/plan" in request.call_id:
        return PLAN
    return "Thought: done\nAction: Finish(43)" if "/join" in request.call_id else "ok"


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    store_path = tmp_path_factory.mktemp("store") / "runs.db"

    async def main() -> str:
        store = RunStore(store_path)
        runtime = Runtime(ScriptedBackend(respond=_respond, per_chunk_s=0.005),
                          tools=default_registry(), store=store)
        result = await runtime.run(loads(SPEC))
        store.close()
        return result.run_id

    return store_path, anyio.run(main)


def _show(stored_run: tuple[Path, str], output: Path, code: int = 0) -> str:
    store, run_id = stored_run
    result = runner.invoke(app, ["show", run_id, "--store", str(store), "-o", str(output)])
    assert result.exit_code == code, result.output
    return result.output


def test_png(tmp_path: Path, stored_run: tuple[Path, str]) -> None:
    path = tmp_path / "run.png"
    assert f"wrote {path}" in _show(stored_run, path)
    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_svg_has_a_bar_for_each_node_and_each_plan_task(
    tmp_path: Path, stored_run: tuple[Path, str]
) -> None:
    path = tmp_path / "run.svg"
    _show(stored_run, path)
    ids = {e.get("id") for e in ET.parse(path).getroot().iter() if e.get("id")}
    bars = {i.removeprefix("node:") for i in ids if i and i.startswith("node:")}
    assert bars == {"ask", "answer", "answer/plan1/1", "answer/plan1/2", "after"}


def test_html_is_one_file_that_fetches_nothing(
    tmp_path: Path, stored_run: tuple[Path, str]
) -> None:
    path = tmp_path / "run.html"
    _show(stored_run, path)
    page = path.read_text()
    assert "http://" not in page and "https://" not in page
    assert page.count('class="bar"') == 5


def test_a_bad_extension_or_folder_is_exit_2(
    tmp_path: Path, stored_run: tuple[Path, str]
) -> None:
    assert ".png, .svg or .html" in _show(stored_run, tmp_path / "run.gif", code=2)
    assert "does not exist" in _show(stored_run, tmp_path / "missing" / "run.png", code=2)
