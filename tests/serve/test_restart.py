"""kill -9 of the server mid-run: the restarted server resumes the run by itself, and no
node that had finished runs again."""

from __future__ import annotations

import time
from pathlib import Path

from serve_harness import StartServer
from serve_test_tools import counts

from taskloom.client import Client

SPEC = """\
name: chain
inputs:
  counter: {type: string}
nodes:
  first: {kind: tool, tool: tick, args: {counter: "{{ inputs.counter }}", key: first, value: 1}}
  second:
    kind: tool
    tool: tick
    args: {counter: "{{ inputs.counter }}", key: second, value: "{{ first.value }}", sleep_s: 3}
  third:
    kind: tool
    tool: tick
    args: {counter: "{{ inputs.counter }}", key: third, value: "{{ second.value }}"}
  words: {kind: llm, prompt: "{{ third.value }}"}
outputs:
  value: "{{ third.value }}"
  words: "{{ words }}"
"""


def test_a_killed_server_resumes_its_runs_on_restart(
    start_server: StartServer, tmp_path: Path
) -> None:
    counter = str(tmp_path / "count")
    server = start_server()
    with Client(server.url) as client:
        run_id = client.submit(SPEC, inputs={"counter": counter})
        deadline = time.monotonic() + 30
        while "first" not in client.get(run_id)["nodes"]:  # committed, `second` sleeping
            assert time.monotonic() < deadline
            time.sleep(0.05)
        before = next(client.events(run_id))
    server.restart()  # kill -9, then start again on the same store
    with Client(server.url) as client:
        result = client.wait(run_id)
        events = list(client.events(run_id))
    assert result["status"] == "succeeded"
    assert result["outputs"] == {"value": 4, "words": "ok"}
    assert {key: len(tokens) for key, tokens in counts(counter).items()} == {
        "first": 1, "second": 1, "third": 1}
    assert result["nodes"]["first"]["output"]["token"] == counts(counter)["first"][0]
    # One numbered stream across both servers, the first event as it was.
    assert events[0] == before
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


def test_a_server_stopped_gracefully_leaves_its_runs_to_the_next_one(
    start_server: StartServer, tmp_path: Path
) -> None:
    counter = str(tmp_path / "count")
    server = start_server()
    with Client(server.url) as client:
        run_id = client.submit(SPEC, inputs={"counter": counter})
        deadline = time.monotonic() + 30
        while "first" not in client.get(run_id)["nodes"]:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    server.stop()  # SIGTERM: the run is cut, but stays `running` in the store
    server.start()
    with Client(server.url) as client:
        result = client.wait(run_id)
    assert result["status"] == "succeeded"
    assert {key: len(tokens) for key, tokens in counts(counter).items()} == {
        "first": 1, "second": 1, "third": 1}
