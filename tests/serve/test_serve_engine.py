"""`taskloom serve` on a real engine (the embedded model behind vLLM's OpenAI-compatible
server, the `openai_server` session's one engine): three clients submit the quickstart at
once and /metrics shows every call of the three in one scheduler; a cancelled run leaves
no request running in the engine."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_harness import Server

from taskloom.client import Client

pytestmark = pytest.mark.openai_server

QUICKSTART = Path(__file__).resolve().parents[2] / "specs" / "quickstart.yaml"
LONG_SPEC = """
name: long
defaults: {max_tokens: 1800, temperature: 0.8, seed: 3}
nodes:
  essay: {kind: llm, prompt: "Write a very long story about a lighthouse keeper."}
outputs: {essay: "{{ essay }}"}
"""
WAIT_S = 120.0
FINISHED = r'^taskloom_scheduler_calls_finished_total\{policy="(\w+)"\} (\S+)$'


def _sample(metrics: str, pattern: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in re.finditer(pattern, metrics, re.M)}


def _engine_running(base_url: str) -> float:
    found = _sample(httpx.get(f"{base_url}/metrics", timeout=10).text,
                    r"^vllm:num_requests_running(\{[^}]*\}) ([0-9.e+]+)$")
    assert found, "the engine's /metrics has no vllm:num_requests_running"
    return sum(found.values())


def _wait_until(condition: Callable[[], bool], what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout_s:.0f} s")


@pytest.fixture
def server(vllm_server: str, tmp_path: Path) -> Iterator[Server]:
    started = Server([], tmp_path, engine=["--backend", "openai", "--base-url", vllm_server])
    yield started.start()
    started.stop()


def test_three_clients_share_one_scheduler_and_a_cancel_empties_the_engine(
    server: Server, vllm_server: str
) -> None:
    results: dict[str, dict[str, Any]] = {}
    errors: list[BaseException] = []
    all_ready = threading.Barrier(3)

    def client(topic: str) -> None:
        try:
            with Client(server.url, timeout=60) as http:
                all_ready.wait()
                run_id = http.submit(QUICKSTART, inputs={"topic": topic})
                results[topic] = http.wait(run_id)
        except BaseException as exc:  # reported below, in the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(t,)) for t in ("wind", "tides", "solar")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=600)
    assert not errors, errors
    assert {topic: r["status"] for topic, r in results.items()} == dict.fromkeys(
        ("wind", "tides", "solar"), "succeeded")
    calls = sum(int(node["llm_calls"]) for r in results.values() for node in r["nodes"].values())
    assert calls >= 12  # four LLM nodes each (a structured answer may be asked again)
    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    finished = _sample(metrics, FINISHED)
    assert finished == {"plas": calls}  # one scheduler saw every call of the three runs
    assert 'taskloom_runs{status="succeeded"} 3.0' in metrics

    with Client(server.url, timeout=60) as http:
        run_id = http.submit(LONG_SPEC)
        _wait_until(lambda: _engine_running(vllm_server) >= 1, "the long call reached the engine")
        http.cancel(run_id)
        final = http.wait(run_id)
    assert final["status"] == "cancelled"
    assert final["nodes"]["essay"]["status"] == "cancelled"
    _wait_until(lambda: _engine_running(vllm_server) == 0,
                "vllm:num_requests_running back to 0 after the cancel", 30)
