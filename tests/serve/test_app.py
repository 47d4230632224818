"""The HTTP API of a real `taskloom serve` subprocess (scripted backend): runs, events,
tenants, and every kind of bad input answered with its own status."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from serve_harness import Server, subprocess_env, taskloom

from taskloom.client import Client, ServerError

KEYS = {"alice": "key-alice", "bob": "key-bob", "carol": "key-carol", "dave": "key-dave"}

CALC = """\
name: calc
inputs:
  x: {type: integer, default: 3}
nodes:
  double: {kind: tool, tool: calculator, args: {expression: "{{ inputs.x }} * 2"}}
  say: {kind: llm, prompt: "say {{ double }}"}
outputs:
  double: "{{ double }}"
  said: "{{ say }}"
"""

SLOW = """\
name: slow
inputs:
  counter: {type: string}
  sleep: {type: number, default: 0}
nodes:
  fast: {kind: tool, tool: tick, args: {counter: "{{ inputs.counter }}", key: fast, value: 1}}
  slow:
    kind: tool
    tool: tick
    args: {counter: "{{ inputs.counter }}", key: slow, value: "{{ fast.value }}",
           sleep_s: "{{ inputs.sleep }}"}
outputs:
  value: "{{ slow.value }}"
"""

BAD_SPEC = """\
name: bad
nodes:
  first: {kind: tool, tool: calculater, args: {expression: "1"}}
  second: {kind: llm, prompt: "{{ frist }}"}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("serve")
    specs = workdir / "specs"
    specs.mkdir()
    (specs / "calc.yaml").write_text(CALC)
    keys = [arg for key in KEYS.values() for arg in ("--api-key", key)]
    running = Server([*keys, "--specs", str(specs), "--max-spec-bytes", "2048",
                      "--max-input-bytes", "512", "--max-nodes", "12",
                      "--max-runs-in-flight", "2"], workdir).start()
    yield running
    running.stop()


def client(server: Server, who: str = "alice") -> Client:
    return Client(server.url, api_key=KEYS[who])


def post(server: Server, body: bytes | dict[str, Any], who: str | None = "alice") -> httpx.Response:
    headers = {"Authorization": f"Bearer {KEYS[who]}"} if who else {}
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{server.url}/v1/runs", content=content, headers=headers, timeout=10)


def test_a_named_program_runs_and_reads_back_as_run_json(server: Server) -> None:
    with client(server) as alice:
        run_id = alice.submit(program="calc", inputs={"x": 5})
        result = alice.wait(run_id)
        shown = alice.get(run_id)
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"double": 10, "said": "ok"}
    assert set(result["nodes"]) == {"double", "say"}
    assert {k: shown[k] for k in result} == result  # GET is `run --json`, plus a few keys
    assert shown["inputs"] == {"x": 5} and shown["policy"] == "plas"


def test_events_pick_up_after_last_event_id(server: Server) -> None:
    with client(server) as alice:
        run_id = alice.submit(CALC)
        everything = list(alice.events(run_id))
        rest = list(alice.events(run_id, after=2))
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    assert everything[-1].kind == "result"
    assert [(e.node_id, e.status) for e in _node_events(everything)] == [
        ("double", "running"), ("double", "succeeded"), ("say", "running"), ("say", "succeeded")]
    assert rest == everything[2:]


def _node_events(events: list[Any]) -> list[Any]:
    class Seen:
        def __init__(self, data: dict[str, Any]) -> None:
            self.node_id, self.status = data["node_id"], data["status"]

    return [Seen(e.data) for e in events if e.kind == "node"]


def test_a_spec_error_is_422_with_the_messages_of_validate(server: Server, tmp_path: Path) -> None:
    spec = tmp_path / "bad.yaml"
    spec.write_text(BAD_SPEC)
    checked = subprocess.run(taskloom("validate", str(spec)), capture_output=True, text=True,
                             env=subprocess_env(), check=False)
    assert checked.returncode == 1
    reply = post(server, {"spec": BAD_SPEC})
    assert reply.status_code == 422
    errors = "\n".join(reply.json()["errors"])
    assert "<request>:3:" in errors and "<request>:4:" in errors
    assert errors.replace("<request>", str(spec)) == checked.stderr.strip()


def test_another_tenants_run_is_404(server: Server) -> None:
    with client(server, "alice") as alice:
        run_id = alice.submit(CALC)
        alice.wait(run_id)
    headers = {"Authorization": f"Bearer {KEYS['bob']}"}
    for method, path in (("GET", ""), ("GET", "/events"), ("POST", "/cancel")):
        reply = httpx.request(method, f"{server.url}/v1/runs/{run_id}{path}", headers=headers)
        assert reply.status_code == 404, path
    with client(server, "bob") as bob:
        assert run_id not in {r["run_id"] for r in bob.runs()}


@pytest.mark.parametrize("header", [None, "Bearer nope", "Bearer key-alicex", "Basic a2V5LWFsaWNl"])
def test_a_missing_or_wrong_key_is_401(server: Server, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    for method, path in (("GET", "/v1/runs"), ("POST", "/v1/runs"), ("GET", "/v1/programs")):
        reply = httpx.request(method, server.url + path, headers=headers, json={"spec": CALC})
        assert reply.status_code == 401, (method, path)
        assert "API key" in reply.json()["error"]


def test_an_import_tool_over_http_is_422(server: Server) -> None:
    spec = "name: sneaky\nnodes:\n  a: {kind: tool, tool: \"os:getcwd\"}\n"
    reply = post(server, {"spec": spec})
    assert reply.status_code == 422
    (error,) = reply.json()["errors"]
    assert error.startswith("<request>:3:") and "--allow-import-tools" in error


def test_an_oversized_spec_is_413(server: Server) -> None:
    padding = "# " + "x" * 3000 + "\n"
    reply = post(server, {"spec": padding + CALC})
    assert reply.status_code == 413
    assert "2048 bytes" in reply.json()["error"]


def test_an_oversized_body_is_413_even_without_a_length(server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"spec": "'
        for _ in range(100):
            yield b"x" * 1024

    headers = {"Authorization": f"Bearer {KEYS['alice']}"}
    reply = httpx.post(f"{server.url}/v1/runs", content=chunks(), headers=headers)
    assert reply.status_code == 413
    assert "exceeds the limit" in reply.json()["error"]


def test_oversized_inputs_are_413(server: Server) -> None:
    reply = post(server, {"program": "calc", "inputs": {"x": 1, "junk": "y" * 600}})
    assert reply.status_code == 413
    assert "512 bytes" in reply.json()["error"]


def test_too_many_nodes_is_refused(server: Server) -> None:
    nodes = "".join(f"  n{i}: {{kind: tool, tool: calculator, args: {{expression: '1'}}}}\n"
                    for i in range(13))
    reply = post(server, {"spec": f"name: wide\nnodes:\n{nodes}"})
    assert reply.status_code == 413
    assert "13 nodes" in reply.json()["error"]


def test_malformed_json_is_400(server: Server) -> None:
    reply = post(server, b'{"spec": "name: x"')
    assert reply.status_code == 400
    assert "malformed JSON" in reply.json()["error"]
    assert post(server, b"[1, 2]").status_code == 400


def test_a_body_of_the_wrong_shape_is_422(server: Server) -> None:
    assert post(server, {"spec": CALC, "program": "calc"}).status_code == 422
    assert post(server, {"spec": CALC, "extra": 1}).status_code == 422
    assert post(server, {"program": "calx"}).status_code == 404
    assert post(server, {"spec": CALC, "policy": "fifo"}).status_code == 422
    assert post(server, {"spec": CALC, "inputs": {"x": "three"}}).status_code == 422


def test_too_many_runs_in_flight_is_429(server: Server, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with client(server, "carol") as carol:
        slow = [carol.submit(SLOW, inputs={"counter": counter, "sleep": 60}) for _ in range(2)]
        with pytest.raises(ServerError) as refused:
            carol.submit(SLOW, inputs={"counter": counter})
        assert refused.value.status == 429
        with client(server, "dave") as dave:  # another tenant is not held up
            assert dave.wait(dave.submit(CALC))["status"] == "succeeded"
        for run_id in slow:
            carol.cancel(run_id)
        assert {carol.wait(r)["status"] for r in slow} == {"cancelled"}


def test_cancel_keeps_what_the_run_computed(server: Server, tmp_path: Path) -> None:
    counter = str(tmp_path / "count")
    with client(server, "dave") as dave:
        run_id = dave.submit(SLOW, inputs={"counter": counter, "sleep": 60})
        _wait_for(lambda: dave.get(run_id)["nodes"].get("fast", {}).get("status") == "succeeded")
        assert dave.cancel(run_id)["status"] == "cancelling"
        result = dave.wait(run_id)
        assert result["status"] == "cancelled"
        assert result["nodes"]["fast"]["output"]["value"] == 2
        assert result["nodes"]["slow"]["status"] == "cancelled"
        assert dave.get(run_id)["status"] == "cancelled"
        with pytest.raises(ServerError) as again:
            dave.cancel(run_id)
        assert again.value.status == 409


def test_a_client_that_disconnects_mid_stream_does_not_cancel_the_run(
    server: Server, tmp_path: Path
) -> None:
    counter = str(tmp_path / "count")
    with client(server, "bob") as bob:
        run_id = bob.submit(SLOW, inputs={"counter": counter, "sleep": 1.5})
        stream = bob.events(run_id)
        first = next(stream)
        assert first.kind == "node"
        stream.close()  # the connection is dropped here
        assert bob.wait(run_id)["status"] == "succeeded"
    assert json.loads(json.dumps(bob_runs := _runs(server, "bob")))  # listable afterwards
    assert run_id in {r["run_id"] for r in bob_runs}


def _runs(server: Server, who: str, **params: Any) -> list[dict[str, Any]]:
    reply = httpx.get(f"{server.url}/v1/runs", params=params,
                      headers={"Authorization": f"Bearer {KEYS[who]}"})
    assert reply.status_code == 200
    runs: list[dict[str, Any]] = reply.json()["runs"]
    return runs


def test_runs_are_listed_by_status_and_limit(server: Server) -> None:
    with client(server, "alice") as alice:
        alice.wait(alice.submit(CALC))
    succeeded = _runs(server, "alice", status="succeeded", limit=1)
    assert len(succeeded) == 1 and succeeded[0]["status"] == "succeeded"
    reply = httpx.get(f"{server.url}/v1/runs", params={"status": "done"},
                      headers={"Authorization": f"Bearer {KEYS['alice']}"})
    assert reply.status_code == 422


def test_programs_health_metrics_and_docs(server: Server) -> None:
    with client(server) as alice:
        (calc,) = alice.programs()
        assert (calc["name"], calc["nodes"], calc["valid"]) == ("calc", 2, True)
        assert alice.health()["status"] == "ok"
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'taskloom_runs{status="succeeded"}' in metrics
    assert "taskloom_llm_calls_in_flight" in metrics
    assert "taskloom_node_latency_seconds_count" in metrics
    assert 'taskloom_calls_queued{level="0",policy="plas"}' in metrics
    assert 'taskloom_tokens_total{kind="generated"}' in metrics
    assert httpx.get(f"{server.url}/docs").status_code == 200
    schema = httpx.get(f"{server.url}/openapi.json").json()
    assert "/v1/runs/{run_id}/events" in schema["paths"]


def _wait_for(condition: Any, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail("condition not met in time")
        time.sleep(0.05)
