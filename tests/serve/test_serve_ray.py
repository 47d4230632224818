"""`taskloom serve --ray --replicas 2`: a real server in a subprocess, starting its own
local Ray with two embedded vLLM replicas, driven over real HTTP. A run submitted over
the API succeeds on both replicas, and /metrics names each replica.

Run alone: `pytest -m ray tests/serve/test_serve_ray.py`.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from serve_harness import Server

from taskloom.client import Client

pytestmark = [pytest.mark.ray, pytest.mark.timeout(900)]

FAN_OUT = (
    "name: fan_out\ndefaults: {temperature: 0, max_tokens: 24}\nnodes:\n"
    + "".join(f"  q{i}: {{kind: llm, prompt: \"Write a story about {topic}.\"}}\n"
              for i, topic in enumerate(["the sea", "a fox", "snow", "a clock",
                                         "tea", "a bridge", "owls", "rain"]))
    + "outputs:\n" + "".join(f"  a{i}: \"{{{{ q{i} }}}}\"\n" for i in range(8))
)


def test_serve_with_two_ray_replicas_runs_a_program_submitted_over_http(
        tmp_path: Path) -> None:
    server = Server(["--ray", "--replicas", "2", "--dtype", "float32"], tmp_path,
                    engine=["--backend", "vllm"], start_timeout_s=600, stop_timeout_s=90)
    server.start()
    try:
        with Client(server.url) as client:
            result = client.wait(client.submit(FAN_OUT))
        assert result["status"] == "succeeded", server.log()[-4000:]
        assert all(isinstance(answer, str) and answer for answer in result["outputs"].values())
        engines = result["engines"]["engines"]
        assert [engine["name"] for engine in engines] == ["ray:replica-0", "ray:replica-1"]
        assert sum(engine["calls"] for engine in engines) == 8
        metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
        for index in (0, 1):
            assert re.search(
                rf'^taskloom_engine_in_service\{{engine="{index}",url="ray:replica-{index}"\}}'
                r" 1\.0$", metrics, re.M), metrics
        calls = [float(value) for value in re.findall(
            r'^taskloom_engine_calls_total\{engine="\d",url="ray:replica-\d"\} ([0-9.]+)$',
            metrics, re.M)]
        assert len(calls) == 2 and sum(calls) == 8
        assert "replica(s) on Ray" in server.log()
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode is not None
