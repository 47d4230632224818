"""The run store through its users: a result saved whole reads back equal, and a runtime
with a store keeps every run, a cancelled one with its finished work."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
from trio.testing import MockClock

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.result import NodeResult, NodeStatus, RunResult, RunStatus
from taskloom.orchestrator.store import RunStore, default_store_path
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import ToolRegistry, default_registry, tool


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return "trio", {"clock": MockClock(autojump_threshold=0)}


def a_result(run_id: str = "run1", status: RunStatus = RunStatus.FAILED) -> RunResult:
    return RunResult(
        run_id=run_id,
        program="demo",
        status=status,
        inputs={"topic": "tea", "xs": [1, 2]},
        outputs={"answer": {"n": 42, "names": ["a", "b"]}, "missing": None},
        nodes={
            "ask": NodeResult(
                node_id="ask", kind="llm", status=NodeStatus.SUCCEEDED, output="hi",
                started_s=0.0, ended_s=1.25, attempts=2, prompt_tokens=7,
                generated_tokens=3, cached_prompt_tokens=4, llm_calls=2,
            ),
            "calc": NodeResult(
                node_id="calc", kind="tool", status=NodeStatus.FAILED,
                error="ValueError: boom", started_s=1.25, ended_s=1.5, attempts=1,
            ),
            "after": NodeResult(node_id="after", kind="llm", status=NodeStatus.PENDING),
        },
        error="failed nodes: calc",
        started_at=1_700_000_000.5,
        wall_s=1.5,
    )


def test_a_saved_result_loads_back_equal_with_its_enums(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    result = a_result()
    assert store.save(result) == tmp_path / "taskloom.db"
    loaded = store.load("run1")
    assert loaded == result
    assert loaded.status is RunStatus.FAILED
    assert loaded.nodes["calc"].status is NodeStatus.FAILED
    assert loaded.nodes["ask"].duration_s == 1.25


def test_save_creates_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "er"
    RunStore(root).save(a_result())
    assert RunStore(root).load("run1") == a_result()


def test_saving_a_run_again_replaces_it(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    store.save(a_result(status=RunStatus.CANCELLED))
    store.save(a_result(status=RunStatus.SUCCEEDED))
    assert store.load("run1").status is RunStatus.SUCCEEDED
    assert store.run_ids() == ["run1"]


def test_the_default_file_is_under_taskloom_home(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    monkeypatch.setenv("TASKLOOM_HOME", str(tmp_path / "home"))
    assert default_store_path() == tmp_path / "home" / "taskloom.db"
    assert RunStore().path == tmp_path / "home" / "taskloom.db"
    monkeypatch.delenv("TASKLOOM_HOME")
    assert default_store_path() == Path(".taskloom") / "taskloom.db"


CANCELLABLE = """
name: c
nodes:
  quick: {kind: tool, tool: answer}
  slow: {kind: llm, prompt: "one"}
"""


@tool
async def answer() -> int:
    """Answers at once, on the event loop (a sync tool's worker thread would race the
    virtual clock)."""
    return 42


def _tools() -> ToolRegistry:
    tools = default_registry()
    tools.register(answer)
    return tools


@pytest.mark.anyio
async def test_a_runtime_saves_a_cancelled_run_with_its_finished_work(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    runtime = Runtime(ScriptedBackend(delay_s=10), tools=_tools(), store=store)
    with anyio.move_on_after(3):  # a cancellation from outside: the store keeps the run
        await runtime.run(loads(CANCELLABLE), run_id="interrupted")
    saved = store.load("interrupted")
    assert saved.status is RunStatus.CANCELLED
    assert saved.nodes["quick"].output == 42
    assert saved.nodes["slow"].status is NodeStatus.CANCELLED


@pytest.mark.anyio
async def test_a_runtime_saves_each_finished_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    runtime = Runtime(ScriptedBackend(respond=lambda r: "done"), tools=_tools(), store=store)
    first = await runtime.run(loads(CANCELLABLE), run_id="one")
    second = await runtime.run(loads(CANCELLABLE), run_id="two")
    assert sorted(store.run_ids()) == ["one", "two"]
    assert store.load("one") == first and store.load("two") == second
    assert second.nodes["slow"].output == "done"
