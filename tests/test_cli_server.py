"""The CLI against a real engine behind the OpenAI-compatible server: a normal run,
Ctrl-C mid-run, an unreachable engine, and an engine that dies mid-run.

These run in the `openai_server` pytest session, whose one engine is that server.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from taskloom.orchestrator.store import RunStore

pytestmark = pytest.mark.openai_server

ROOT = Path(__file__).parent.parent
SPECS = ROOT / "specs"

LONG_SPEC = """
name: long
defaults: {max_tokens: 1800, temperature: 0.8, seed: 3}
nodes:
  quick: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  essay: {kind: llm, prompt: "Write a very long story about a lighthouse keeper."}
  review: {kind: llm, prompt: "Review this story: {{ essay }}", max_tokens: 16}
outputs:
  answer: "{{ quick }}"
"""


def _taskloom(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskloom", *args]


def _running(base_url: str) -> float:
    metrics = httpx.get(f"{base_url}/metrics", timeout=5).text
    found = re.search(r"^vllm:num_requests_running\{[^}]*\} ([0-9.e+]+)$", metrics, re.M)
    assert found
    return float(found.group(1))


def _wait_until(condition: object, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return
        time.sleep(0.2)
    pytest.fail(f"condition not met within {timeout_s} s")


def _start_run(
    spec: Path, base_url: str, tmp_path: Path, *options: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _taskloom("run", str(spec), "--backend", "openai", "--base-url", base_url, "--json",
                  *options),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "TASKLOOM_HOME": str(tmp_path / "home")},
    )


def test_run_prints_json_with_outputs_and_per_node_timings(vllm_server: str,
                                                           tmp_path: Path) -> None:
    done = subprocess.run(
        _taskloom("run", str(SPECS / "quickstart.yaml"), "--backend", "openai",
                  "--base-url", vllm_server, "--json", "-i", "topic=wind power"),
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
        env={**os.environ, "TASKLOOM_HOME": str(tmp_path / "home")},
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "succeeded"
    assert report["outputs"]["verdict"] in ("good", "mixed")
    assert set(report["nodes"]) == {"advantage", "drawback", "fact", "capacity_kw", "summary"}
    for node in report["nodes"].values():
        assert node["status"] == "succeeded"
        assert node["start"] is not None and node["end"] >= node["start"]
    assert report["nodes"]["summary"]["generated_tokens"] > 0
    store = RunStore(tmp_path / "home")
    assert store.run_ids() == [report["run_id"]]
    assert store.load(report["run_id"]).outputs == report["outputs"]


def test_ctrl_c_aborts_the_engine_requests_and_keeps_partial_results(
    vllm_server: str, tmp_path: Path
) -> None:
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_SPEC)
    run = _start_run(spec, vllm_server, tmp_path)
    try:
        _wait_until(lambda: _running(vllm_server) >= 1, 120)
        run.send_signal(signal.SIGINT)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 130, stderr
    report = json.loads(stdout)
    assert report["status"] == "cancelled"
    assert report["nodes"]["quick"]["output"] == 42
    assert report["nodes"]["essay"]["status"] == "cancelled"
    assert report["nodes"]["review"]["status"] == "pending"
    _wait_until(lambda: _running(vllm_server) == 0, 30)


def test_an_unreachable_engine_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    done = subprocess.run(
        _taskloom("run", str(SPECS / "quickstart.yaml"), "--backend", "openai",
                  "--base-url", f"http://127.0.0.1:{port}"),
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    assert done.returncode == 4
    assert "engine error" in done.stderr and str(port) in done.stderr


@pytest.mark.kills_engine
def test_an_engine_that_dies_mid_run_fails_the_run_and_keeps_finished_work(
    vllm_server_process: tuple[str, subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    base_url, server = vllm_server_process
    spec = tmp_path / "long.yaml"
    spec.write_text(LONG_SPEC)
    run = _start_run(spec, base_url, tmp_path)
    try:
        _wait_until(lambda: _running(base_url) >= 1, 120)
        os.killpg(server.pid, signal.SIGKILL)  # the server and its engine process
        stdout, stderr = run.communicate(timeout=120)
    finally:
        run.kill()
    assert run.returncode == 3, stderr
    report = json.loads(stdout)
    assert report["status"] == "failed"
    assert report["nodes"]["quick"]["output"] == 42
    essay = report["nodes"]["essay"]
    assert essay["status"] == "failed" and essay["error"]
    assert report["nodes"]["review"]["status"] == "skipped"


def test_sample_slots_cap_the_samples_in_the_engine(vllm_server: str, tmp_path: Path) -> None:
    # Three questions of up to 8 samples (gangs of 3) in a pool of 4 slots. A question
    # starts only with its whole gang, so the server's own count of running requests
    # (updated every engine step) reached 3; the pool keeps it at 4 or fewer (24
    # without it). A gang runs for several engine steps, longer than a poll takes.
    gang, slots = 3, 4
    run = _start_run(SPECS / "self_consistency.yaml", vllm_server, tmp_path,
                     "--sample-slots", str(slots))
    most_running = 0.0
    try:
        while run.poll() is None:
            most_running = max(most_running, _running(vllm_server))
            time.sleep(0.01)
        stdout, stderr = run.communicate(timeout=60)
    finally:
        run.kill()
    assert run.returncode == 0, stderr
    report = json.loads(stdout)
    assert report["status"] == "succeeded"
    used = report["outputs"]["samples_used"]
    assert len(used) == 3 and all(gang <= count <= 8 for count in used)
    assert gang <= most_running <= slots
