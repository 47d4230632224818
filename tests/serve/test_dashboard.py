"""The dashboard's routes, in process: the page and its files (served offline, with a
strict content policy), and the two JSON routes it adds, each answering only to a key
and only about the key's own tenant."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from taskloom.serve.app import create_app
from taskloom.serve.config import ServeConfig, tenant_id
from taskloom.serve.dashboard import STATIC_DIR

ALICE = {"Authorization": "Bearer key-alice"}
BOB = {"X-API-Key": "key-bob"}
SPEC = """\
name: pair
nodes:
  first: {kind: llm, prompt: "one"}
  second: {kind: llm, prompt: "two {{ first }}"}
outputs:
  said: "{{ second }}"
"""


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    config = ServeConfig(backend="scripted", store=tmp_path / "store.db",
                         api_keys=("key-alice", "key-bob"))
    with TestClient(create_app(config)) as started:
        yield started


def _finished_run(client: TestClient) -> str:
    started = client.post("/v1/runs", headers=ALICE, json={"spec": SPEC})
    assert started.status_code == 202, started.text
    run_id = str(started.json()["run_id"])
    events = client.get(f"/v1/runs/{run_id}/events", headers=ALICE)  # ends with the run
    assert "event: result" in events.text
    return run_id


def test_the_page_loads_without_a_key_and_allows_only_its_own_files(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "connect-src 'self'" in policy
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, nothing remote


def test_every_module_the_page_imports_is_served(client: TestClient) -> None:
    scripts = sorted(STATIC_DIR.glob("*.js"))
    imported = {name for path in scripts
                for name in re.findall(r"from '\./([\w.]+)'", path.read_text())}
    assert imported <= {path.name for path in scripts}
    for name in ["app.js", *sorted(imported)]:
        served = client.get(f"/static/{name}")
        assert served.status_code == 200, name
        assert "javascript" in served.headers["content-type"]
        fetched = served.text.replace("'http://www.w3.org/2000/svg'", "")  # a name, not a URL
        assert "https://" not in fetched and "http://" not in fetched
    assert client.get("/static/dashboard.css").status_code == 200


def test_the_scheduler_state_needs_a_key_and_names_no_run(client: TestClient) -> None:
    assert client.get("/v1/scheduler").status_code == 401
    assert client.get("/v1/scheduler", headers={"X-API-Key": "wrong"}).status_code == 401
    run_id = _finished_run(client)
    state = client.get("/v1/scheduler", headers=BOB)
    assert state.status_code == 200
    assert state.json()["tenant"] == tenant_id("key-bob")
    assert state.json()["tenant_runs_in_flight"] == 0
    policy = state.json()["policies"][0]
    assert policy["counters"] is True
    assert policy["engines"][0]["finished_calls"] == 2  # alice's two calls, as a count
    assert run_id not in state.text and "pair" not in state.text


def test_a_runs_graph_is_shown_to_its_own_tenant_only(client: TestClient) -> None:
    run_id = _finished_run(client)
    graph = client.get(f"/v1/runs/{run_id}/graph", headers=ALICE)
    assert graph.status_code == 200
    assert [(node["id"], node["depends_on"]) for node in graph.json()["nodes"]] == [
        ("first", []), ("second", ["first"])]
    assert graph.json()["nodes"][1]["definition"]["prompt"] == "two {{ first }}"
    assert client.get(f"/v1/runs/{run_id}/graph", headers=BOB).status_code == 404
    assert client.get(f"/v1/runs/{run_id}/graph").status_code == 401
    assert client.get("/v1/runs/nope/graph", headers=ALICE).status_code == 404
