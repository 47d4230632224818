"""The crash test of issue 14 on the scripted backend, smaller: runs survive kill -9 of
the server (5 kills at random moments), every run succeeds with the outputs of an
uninterrupted run, and no finished node runs twice. `benchmarks/serve_crash.py` is the
same test at 200 runs; TASKLOOM_CRASH_RUNS sets the count here (default 20)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "serve_crash.py"


def _harness() -> ModuleType:
    spec = importlib.util.spec_from_file_location("serve_crash", BENCHMARK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


def test_runs_survive_five_kill_9s_of_the_server(tmp_path: Path) -> None:
    runs = int(os.environ.get("TASKLOOM_CRASH_RUNS", "20"))
    figures = _harness().crash_test(runs=runs, kills=5, workdir=tmp_path, seed=1)
    assert figures["problems"] == []
    assert figures["succeeded"] == runs
    assert len(figures["runs_running_at_each_kill"]) == 5
    assert sum(figures["runs_running_at_each_kill"]) > 0  # the kills cut runs short
    assert figures["tool_executions"] >= figures["tool_nodes"]
