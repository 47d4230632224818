"""Budgets and accounting through `taskloom serve` (scripted backend): the server's
`--budget` caps every run, a request's budget tightens it, the API shows the limit
crossed and the accounting, lists runs by the new status, and /metrics counts them."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from serve_harness import StartServer, subprocess_env
from serve_harness import taskloom as taskloom_command

from taskloom.client import Client

THREE_CALLS = """\
name: three
budget: {llm_calls: 10}
nodes:
  calc: {kind: tool, tool: calculator, args: {expression: "6 * 7"}}
  a: {kind: llm, prompt: "one {{ calc }}"}
  b: {kind: llm, prompt: "two", after: [a]}
  c: {kind: llm, prompt: "three", after: [b]}
outputs:
  calc: "{{ calc }}"
"""


def test_a_servers_cap_and_a_requests_budget_stop_runs_and_are_shown(
    start_server: StartServer, tmp_path: Path
) -> None:
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"default": {"prompt": 1.0, "generated": 2.0}}))
    server = start_server("--api-key", "k1", "--budget", "llm_calls=2", "--prices", str(prices))
    with Client(server.url, api_key="k1") as client:
        capped = client.wait(client.submit(THREE_CALLS))
        tighter = client.wait(client.submit(THREE_CALLS, budget={"llm_calls": 1}))
        listed = client.runs(status="budget_exceeded")

    # The spec allows 10 calls; the server's cap of 2 wins, and a request may go lower.
    assert capped["status"] == "budget_exceeded"
    assert capped["budget_exceeded"] == {"limit": "llm_calls", "allowed": 2, "used": 3}
    assert tighter["budget_exceeded"]["allowed"] == 1
    assert {r["run_id"] for r in listed} == {capped["run_id"], tighter["run_id"]}
    # Finished nodes are kept, and the accounting adds up, with its cost.
    assert capped["nodes"]["calc"]["output"] == 42 and capped["outputs"] == {"calc": 42}
    totals = capped["totals"]
    assert totals["llm_calls"] == 2 and totals["tool_calls"] == 1
    assert totals["llm_calls"] == sum(n["llm_calls"] for n in capped["nodes"].values())
    assert totals["cost_usd"] > 0

    metrics = httpx.get(f"{server.url}/metrics", timeout=10).text
    assert 'taskloom_runs_budget_exceeded_total{limit="llm_calls"} 2.0' in metrics
    assert 'taskloom_run_calls_total{kind="llm"} 3.0' in metrics
    assert 'taskloom_run_calls_total{kind="tool"} 2.0' in metrics
    assert 'taskloom_runs{status="budget_exceeded"} 2.0' in metrics
    assert 'taskloom_run_seconds_total{kind="engine"}' in metrics


def test_submit_wait_exits_5_on_a_budget_and_refuses_an_unknown_limit(
    start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server()
    spec = tmp_path / "three.yaml"
    spec.write_text(THREE_CALLS)
    args = ("submit", str(spec), "--server", server.url, "--wait", "--json")
    done = subprocess.run(taskloom_command(*args, "--budget", "llm_calls=1"),
                          capture_output=True, text=True, env=subprocess_env(), timeout=120,
                          check=False)
    assert done.returncode == 5, done.stderr
    assert json.loads(done.stdout)["budget_exceeded"]["limit"] == "llm_calls"
    bad = subprocess.run(taskloom_command(*args, "--budget", "llm_cals=1"),
                         capture_output=True, text=True, env=subprocess_env(), timeout=120,
                         check=False)
    assert bad.returncode == 2 and "did you mean 'llm_calls'" in bad.stderr
