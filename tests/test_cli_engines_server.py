"""`taskloom run --engine A --engine B` on two real vLLM servers of the embedded model
(float32, greedy): both are used, a server killed mid-run has its calls finish on the
other with the same answers, and killing both is an engine error that keeps finished
nodes. The servers are the tests' own (`start_replicas`), so they may be killed.

Run with `pytest -m openai_server tests/test_cli_engines_server.py -s` (the `-s` shows
each replica's memory).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from vllm_replicas import VLLMReplica

from taskloom.orchestrator.store import RunStore

pytestmark = [pytest.mark.openai_server, pytest.mark.timeout(1800)]

QUESTIONS = ["a lighthouse", "the moon", "rivers", "bread", "a violin", "winter", "bees",
             "a library"]
# Long answers (the model writes on to max_tokens): each server stays busy for seconds, so
# the kill tests' polls of its metrics see it at work. Two-sentence answers could all
# end between two polls on a fast idle machine (CI once waited 600 s for that).
FAN_OUT = (
    "name: fan_out\ndefaults: {temperature: 0, max_tokens: 128}\nnodes:\n"
    + "".join(f"  q{i}: {{kind: llm, prompt: \"Write a long story about {topic}.\"}}\n"
              for i, topic in enumerate(QUESTIONS))
    + "outputs:\n" + "".join(f"  a{i}: \"{{{{ q{i} }}}}\"\n" for i in range(len(QUESTIONS)))
)
AFTER_FIRST = (
    "name: after_first\ndefaults: {temperature: 0, max_tokens: 128}\nnodes:\n"
    "  first: {kind: llm, prompt: \"Name a color.\", max_tokens: 4}\n"
    + "".join(f"  q{i}: {{kind: llm, prompt: \"After {{{{ first }}}}, write a long story"
              f" about {topic}.\"}}\n"
              for i, topic in enumerate(QUESTIONS))
    + "outputs:\n  first: \"{{ first }}\"\n"
)


def _run(tmp_path: Path, spec_text: str, urls: list[str]) -> subprocess.Popen[str]:
    spec = tmp_path / "spec.yaml"
    spec.write_text(spec_text)
    engines = [arg for url in urls for arg in ("--engine", url)]
    return subprocess.Popen(
        [sys.executable, "-m", "taskloom", "run", str(spec), "--json", *engines],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={**os.environ, "TASKLOOM_HOME": str(tmp_path / "home")},
    )


def _finish(run: subprocess.Popen[str]) -> tuple[int, dict[str, Any], str]:
    try:
        stdout, stderr = run.communicate(timeout=900)
    finally:
        run.kill()
    return run.returncode, json.loads(stdout) if stdout.strip() else {}, stderr


def _running(replica: VLLMReplica) -> float:
    try:
        metrics = httpx.get(f"{replica.base_url}/metrics", timeout=5).text
    except httpx.HTTPError:
        return 0.0
    found = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    return float(found.group(1)) if found else 0.0


def _wait_during(run: subprocess.Popen[str], condition: Callable[[], bool],
                 timeout_s: float) -> None:
    """Waits for `condition` while `run` is still going; a run that ends first fails the
    test at once, with what it printed (waiting on would only time out)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        if run.poll() is not None:
            stdout, stderr = run.communicate()
            pytest.fail(f"the run ended (exit {run.returncode}) before the condition was "
                        f"met\nstderr: {stderr[-4000:]}\nstdout: {stdout[-2000:]}")
        time.sleep(0.05)
    run.kill()
    pytest.fail(f"condition not met within {timeout_s} s")


def _rss_mib(replica: VLLMReplica) -> float:
    """The resident memory of the server and its engine process together."""
    root = psutil.Process(replica.process.pid)
    return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20


@pytest.fixture(scope="module")
def pair(start_replicas: Callable[[int], list[VLLMReplica]]) -> list[VLLMReplica]:
    return start_replicas(2)


@pytest.fixture(scope="module")
def single_engine_answers(pair: list[VLLMReplica], tmp_path_factory: pytest.TempPathFactory
                          ) -> dict[str, Any]:
    code, report, stderr = _finish(_run(tmp_path_factory.mktemp("one"), FAN_OUT,
                                        [pair[0].base_url]))
    assert code == 0, stderr
    return dict(report["outputs"])


def test_eight_parallel_calls_use_both_servers_with_the_single_engine_answers(
    pair: list[VLLMReplica], single_engine_answers: dict[str, Any], tmp_path: Path
) -> None:
    code, report, stderr = _finish(_run(tmp_path, FAN_OUT, [r.base_url for r in pair]))
    assert code == 0, stderr
    engines = report["engines"]["engines"]
    assert all(engine["calls"] >= 1 for engine in engines), engines
    assert sum(engine["calls"] for engine in engines) == len(QUESTIONS)
    assert report["outputs"] == single_engine_answers
    for replica in pair:
        print(f"\n[taskloom] replica {replica.base_url}: RSS {_rss_mib(replica):.0f} MiB")


def test_a_server_killed_mid_run_hands_its_calls_to_the_other(
    pair: list[VLLMReplica], single_engine_answers: dict[str, Any], tmp_path: Path
) -> None:
    run = _run(tmp_path, FAN_OUT, [r.base_url for r in pair])
    # Only the server to be killed must be busy: its calls are the ones that move.
    _wait_during(run, lambda: _running(pair[1]) >= 1, 600)
    pair[1].kill()
    code, report, stderr = _finish(run)
    assert code == 0, stderr
    moves = report["engines"]["moves"]
    assert moves and all((m["from_engine"], m["to_engine"]) == (1, 0) for m in moves)
    assert report["outputs"] == single_engine_answers
    assert [e["in_service"] for e in report["engines"]["engines"]] == [True, False]


def test_killing_every_server_exits_4_and_keeps_the_finished_nodes(
    start_replicas: Callable[[int], list[VLLMReplica]], tmp_path: Path
) -> None:
    replicas = start_replicas(2)
    run = _run(tmp_path, AFTER_FIRST, [r.base_url for r in replicas])
    # Both servers busy means the fan-out has started, so `first` has finished.
    _wait_during(run, lambda: all(_running(r) >= 1 for r in replicas), 600)
    for replica in replicas:
        replica.kill()
    code, report, stderr = _finish(run)
    assert code == 4, stderr
    assert report["engines"]["every_engine_lost"] is True
    assert "every engine is out of service" in report["error"]
    assert report["nodes"]["first"]["status"] == "succeeded"
    store = RunStore(tmp_path / "home" / "taskloom.db")
    kept = store.finished_nodes(report["run_id"], ["first"])
    store.close()
    assert kept["first"].output == report["nodes"]["first"]["output"]
