"""The command line against a server: submit (and --wait), runs, show and cancel."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from serve_harness import StartServer, subprocess_env
from serve_harness import taskloom as taskloom_command

import taskloom

SPEC = """\
name: hello
inputs:
  x: {type: integer, default: 4}
nodes:
  square: {kind: tool, tool: calculator, args: {expression: "{{ inputs.x }} ** 2"}}
  say: {kind: llm, prompt: "{{ square }}"}
outputs:
  square: "{{ square }}"
"""

SLOW = """\
name: slow
nodes:
  nap: {kind: tool, tool: tick, args: {counter: count.txt, key: nap, sleep_s: 60}}
"""


def _cli(*args: str, code: int = 0) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(taskloom_command(*args), capture_output=True, text=True,
                          env=subprocess_env(), timeout=120, check=False)
    assert done.returncode == code, done.stderr
    return done


def test_submit_wait_runs_show_and_cancel_over_http(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server("--api-key", "k1")
    spec = tmp_path / "hello.yaml"
    spec.write_text(SPEC)
    auth = ("--server", server.url, "--api-key", "k1")

    waited = _cli("submit", str(spec), "-i", "x=5", "--wait", "--json", *auth)
    result = json.loads(waited.stdout)
    assert result["status"] == "succeeded" and result["outputs"] == {"square": 25}

    streamed = _cli("submit", str(spec), "--wait", *auth)
    assert "square: running" in streamed.stderr and "say: succeeded" in streamed.stderr
    assert '"square": 16' in streamed.stdout

    listed = json.loads(_cli("runs", "--json", *auth).stdout)
    assert [r["status"] for r in listed] == ["succeeded", "succeeded"]
    shown = json.loads(_cli("show", result["run_id"], *auth).stdout)
    assert {k: shown[k] for k in result} == result

    slow = tmp_path / "slow.yaml"
    slow.write_text(SLOW)
    run_id = _cli("submit", str(slow), *auth).stdout.strip()
    assert "cancelling" in _cli("cancel", run_id, *auth).stdout
    with taskloom.Client(server.url, api_key="k1") as client:
        assert client.wait(run_id)["status"] == "cancelled"

    refused = _cli("runs", "--server", server.url, "--api-key", "wrong", code=2)
    assert "401" in refused.stderr
    bad = _cli("submit", "nonexistent-program", *auth, code=2)
    assert "unknown program 'nonexistent-program'" in bad.stderr
