"""Issue 13 through `taskloom serve`: every hostile spec, sent over HTTP by one tenant,
gets its 4xx (422 located, 413 oversized) or a run that fails with a node error naming
the limit; never a 5xx or a run that does not end. Meanwhile another tenant's runs all
succeed, and the server still answers /healthz.

The cases are `HOSTILE_CASES` of benchmarks/serve_hostile.py, which also measures the
other tenant's latency meanwhile (no timing is asserted here)."""

from __future__ import annotations

import importlib.util
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from serve_harness import Server

# A run that has not ended after this many polls (0.05 s apart) counts as hung.
MAX_POLLS = 1200


def _load_benchmark() -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package; load the one we share by path.
    path = Path(__file__).parent.parent.parent / "benchmarks" / "serve_hostile.py"
    spec = importlib.util.spec_from_file_location("taskloom_benchmarks_serve_hostile", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()
KEYS: dict[str, str] = bench.KEYS
NORMAL = """\
name: normal
inputs:
  x: {type: integer, default: 4}
nodes:
  double: {kind: tool, tool: calculator, args: {expression: "{{ inputs.x }} * 2"}}
  say: {kind: llm, prompt: "say {{ double }}"}
outputs:
  double: "{{ double }}"
  said: "{{ say }}"
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("hostile")
    bench.prepare_tools_root(workdir)
    keys = [arg for key in KEYS.values() for arg in ("--api-key", key)]
    running = Server([*keys, "--tools-root", str(workdir)], workdir).start()
    yield running
    running.stop()


def http(server: Server, tenant: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=30,
                        headers={"Authorization": f"Bearer {KEYS[tenant]}"})


def wait_for_end(client: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(MAX_POLLS):
        run: dict[str, Any] = client.get(f"/v1/runs/{run_id}").json()
        if run["status"] != "running":
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end: {run}")


def submit(server: Server, case: Any) -> tuple[int, dict[str, Any]]:
    """The status code, and the refusal's body or the ended run."""
    with http(server, "a") as client:
        reply = client.post("/v1/runs", json={"spec": case.spec, "inputs": case.inputs})
        if reply.status_code != 202:
            return reply.status_code, reply.json()
        return 202, wait_for_end(client, reply.json()["run_id"])


def normal_runs(server: Server, count: int) -> list[dict[str, Any]]:
    with http(server, "b") as client:
        ids = []
        for x in range(count):
            reply = client.post("/v1/runs", json={"spec": NORMAL, "inputs": {"x": x}})
            assert reply.status_code == 202, reply.text
            ids.append(reply.json()["run_id"])
        return [wait_for_end(client, run_id) for run_id in ids]


@pytest.mark.parametrize("case", bench.HOSTILE_CASES, ids=lambda case: case.name)
def test_a_hostile_spec_is_refused_or_fails_naming_the_limit(server: Server, case: Any) -> None:
    status, answer = submit(server, case)
    if case.status == 202:
        assert status == 202, answer
        assert answer["status"] == "failed", answer
        errors = bench.run_errors(answer)
        assert case.expect in errors, errors
        # The run's own error, or one of its nodes': never a traceback.
        assert "Traceback" not in errors
    else:
        assert status == case.status, answer
        message = "\n".join([answer["error"], *answer.get("errors", [])])
        assert case.expect in message, message
        if status == 422:
            assert all(error.startswith(bench.LOCATED) for error in answer["errors"]), answer


def test_other_tenants_runs_succeed_while_hostile_specs_arrive(server: Server) -> None:
    with ThreadPoolExecutor(max_workers=3) as pool:
        hostile = [pool.submit(submit, server, case) for case in bench.HOSTILE_CASES]
        normal = pool.submit(normal_runs, server, 12)
        outcomes = [future.result() for future in hostile]
        runs = normal.result()
    assert [run["status"] for run in runs] == ["succeeded"] * 12
    assert [run["outputs"]["double"] for run in runs] == [2 * x for x in range(12)]
    assert all(status < 500 for status, _ in outcomes)
    with http(server, "b") as client:  # b sees none of a's runs
        listed = client.get("/v1/runs", params={"limit": 1000}).json()["runs"]
        assert {run["program"] for run in listed} == {"normal"}
    health = httpx.get(f"{server.url}/healthz", timeout=10)
    assert health.status_code == 200
    assert health.json()["status"] == "ok"
