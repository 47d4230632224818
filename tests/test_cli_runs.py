"""`taskloom runs`, `show` and `resume` on this machine's store, and a real kill -9 of
`taskloom run` in the middle of a run, then `taskloom resume`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskloom.orchestrator.store import RunStore, StoredStatus

ROOT = Path(__file__).parent.parent
TOOLS = ROOT / "tests" / "serve" / "serve_test_tools.py"

SPEC = """\
name: counted
inputs:
  counter: {type: string}
nodes:
  a: {kind: tool, tool: "serve_test_tools:tick", args: {counter: "{{ inputs.counter }}", key: a}}
  b:
    kind: tool
    tool: "serve_test_tools:tick"
    args: {counter: "{{ inputs.counter }}", key: b, value: "{{ a.value }}"}
  slow:
    kind: tool
    tool: "serve_test_tools:tick"
    args: {counter: "{{ inputs.counter }}", key: slow, value: "{{ a.value * 10 }}", sleep_s: 4}
  c:
    kind: tool
    tool: "serve_test_tools:tick"
    args: {counter: "{{ inputs.counter }}", key: c, value: "{{ b.value + slow.value }}"}
  words: {kind: llm, prompt: "total {{ c.value }}"}
outputs:
  total: "{{ c.value }}"
  words: "{{ words }}"
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    shutil.copy(TOOLS, tmp_path / TOOLS.name)  # beside the spec: trusted to import
    (tmp_path / "counted.yaml").write_text(SPEC)
    return tmp_path


def _env(workdir: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(workdir)])
    env["TASKLOOM_HOME"] = str(workdir / "home")
    return env


def _taskloom(
    workdir: Path, *args: str, check_code: int | None = 0
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "taskloom", *args], cwd=workdir,
                          env=_env(workdir), capture_output=True, text=True, timeout=120,
                          check=False)
    if check_code is not None:
        assert done.returncode == check_code, done.stderr
    return done


def _counts(counter: Path) -> dict[str, int]:
    lines = counter.read_text().split("\n") if counter.exists() else []
    found: dict[str, int] = {}
    for line in filter(None, lines):
        key = line.split(" ")[0]
        found[key] = found.get(key, 0) + 1
    return found


def _run_json(workdir: Path, counter: Path) -> dict[str, Any]:
    done = _taskloom(workdir, "run", "counted.yaml", "--backend", "scripted", "--json",
                     "-i", f"counter={counter}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_runs_and_show_read_the_store_that_run_wrote(workdir: Path) -> None:
    result = _run_json(workdir, workdir / "count")
    listed = json.loads(_taskloom(workdir, "runs", "--json").stdout)
    assert [(r["run_id"], r["status"], r["program"]) for r in listed] == [
        (result["run_id"], "succeeded", "counted")]
    shown = json.loads(_taskloom(workdir, "show", result["run_id"]).stdout)
    assert {k: shown[k] for k in result} == result
    table = _taskloom(workdir, "runs").stdout
    assert result["run_id"] in table and "succeeded" in table
    missing = _taskloom(workdir, "show", "nope", check_code=2)
    assert "no run 'nope'" in missing.stderr


def test_kill_9_mid_run_then_resume_runs_every_node_exactly_once(workdir: Path) -> None:
    reference = _run_json(workdir, workdir / "reference-count")
    counter = workdir / "count"
    running = subprocess.Popen(
        [sys.executable, "-m", "taskloom", "run", "counted.yaml", "--backend", "scripted",
         "--json", "-i", f"counter={counter}"],
        cwd=workdir, env=_env(workdir), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    run_id = _wait_until_committed(workdir / "home", {"a", "b"}, running,
                                   skip=reference["run_id"])
    running.send_signal(signal.SIGKILL)
    running.wait()
    assert _counts(counter) == {"a": 1, "b": 1}  # `slow` was asleep, `c` not started
    row = RunStore(workdir / "home").get(run_id)
    assert row is not None and row.status is StoredStatus.RUNNING

    resumed = json.loads(_taskloom(workdir, "resume", run_id, "--backend", "scripted",
                                   "--json").stdout)
    assert resumed["status"] == "succeeded"
    assert _counts(counter) == {"a": 1, "b": 1, "slow": 1, "c": 1}
    assert resumed["outputs"] == reference["outputs"] == {"total": 14, "words": "ok"}
    values = {n: v["output"]["value"] for n, v in resumed["nodes"].items() if n != "words"}
    assert values == {n: v["output"]["value"] for n, v in reference["nodes"].items()
                      if n != "words"}
    shown = json.loads(_taskloom(workdir, "show", run_id).stdout)
    assert shown["status"] == "succeeded" and shown["outputs"] == resumed["outputs"]


def _wait_until_committed(
    home: Path, nodes: set[str], process: subprocess.Popen[bytes], skip: str
) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be killed"
        if (home / "taskloom.db").exists():
            store = RunStore(home)
            for row in store.runs():
                if row.run_id != skip and nodes <= set(store.nodes(row.run_id)):
                    store.close()
                    return row.run_id
            store.close()
        time.sleep(0.05)
    pytest.fail("the nodes were never committed")


def test_a_server_that_cannot_be_reached_is_exit_4(workdir: Path) -> None:
    done = _taskloom(workdir, "runs", "--server", "http://127.0.0.1:9", check_code=4)
    assert "cannot reach the server" in done.stderr
