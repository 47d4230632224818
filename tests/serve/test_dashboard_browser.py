"""The dashboard in a real headless Chromium (the system's, driven by Playwright) against
a real `taskloom serve` subprocess: submit a run, see it listed, watch a node go pending,
running, succeeded in the Gantt, cancel runs, and stay inside the key's tenant.

Nodes wait on files (`dashboard_test_tools.gate`) that the test creates, so each state is
held until the test has seen it: nothing here depends on how fast the machine is.
Without Chromium these tests fail: `scripts/install.sh` installs it."""

from __future__ import annotations

import json
import math
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright
from serve_harness import Server
from serve_test_tools import tick
from trio.testing import MockClock

from taskloom.backends.scripted import ScriptedBackend
from taskloom.orchestrator.scheduler import ProgramAwareScheduler
from taskloom.orchestrator.scheduler.queues import QueueConfig
from taskloom.orchestrator.store import RunRow, RunStore, StoredStatus
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.serve.config import tenant_id
from taskloom.tools.registry import default_registry

pytestmark = pytest.mark.browser

KEY = "key-alice"
OTHER_KEY = "key-bob"
WAIT_MS = 30_000  # the longest any one expectation waits (a loaded CI machine)

GATED = """\
name: gated
description: Two nodes that wait for files, then an LLM call.
inputs:
  first: {type: string}
  second: {type: string}
nodes:
  open: {kind: tool, tool: gate, args: {path: "{{ inputs.first }}"}}
  wait: {kind: tool, tool: gate, args: {path: "{{ inputs.second }}", value: "{{ open.value }}"}}
  say: {kind: llm, prompt: "The gates gave {{ wait.value }}. Say so."}
outputs:
  said: "{{ say }}"
"""

ECHO = """\
name: echo
inputs:
  text: {type: string}
nodes:
  say: {kind: llm, prompt: "{{ inputs.text }}"}
outputs:
  text: "{{ inputs.text }}"
"""

PREEMPTED = """\
name: preempted
inputs:
  counter: {type: string}
nodes:
  long: {kind: llm, prompt: long}
  pause: {kind: tool, tool: tick, args: {counter: "{{ inputs.counter }}", key: p, sleep_s: 3.5}}
  short: {kind: llm, prompt: "short, after {{ pause.value }}"}
"""


def chromium_path() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("no Chromium on PATH: the dashboard's browser tests need one "
                    "(scripts/install.sh runs `apt-get install chromium`)")
    return found


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = chromium_path()
    with sync_playwright() as playwright:
        # The system Chromium: Playwright's own browser download needs the internet.
        launched = playwright.chromium.launch(executable_path=path, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    workdir = tmp_path_factory.mktemp("dashboard")
    specs = workdir / "specs"
    specs.mkdir()
    (specs / "gated.yaml").write_text(GATED)
    (specs / "echo.yaml").write_text(ECHO)
    running = Server(["--api-key", KEY, "--api-key", OTHER_KEY, "--specs", str(specs),
                      "--tools", "dashboard_test_tools"], workdir).start()
    yield running
    running.stop()


@pytest.fixture
def page(browser: Browser, server: Server) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    expect.set_options(timeout=WAIT_MS)
    yield opened
    context.close()
    assert errors == []  # no uncaught exception in the page's scripts


def sign_in(page: Page, server: Server, key: str = KEY) -> None:
    page.goto(server.url)
    expect(page.locator("#login")).to_be_visible()
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#shell")).to_be_visible()


def submit_from_page(page: Page, program: str, inputs: dict[str, str]) -> str:
    expect(page.locator(f"#submit-program option[value={program}]")).to_be_attached()
    page.select_option("#submit-program", program)
    page.fill("#submit-inputs", json.dumps(inputs))
    page.click("#submit-run")
    link = page.locator("#submit-message a")
    expect(link).to_be_visible()
    return link.inner_text()


def gate_inputs(folder: Path) -> dict[str, str]:
    return {"first": str(folder / "first"), "second": str(folder / "second")}


def test_a_run_submitted_from_the_page_is_listed_and_its_nodes_go_live(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    run_id = submit_from_page(page, "gated", gate_inputs(tmp_path))
    row = page.locator(f"#runs-body tr[data-run='{run_id}']")
    expect(row).to_be_visible()
    expect(row.locator(".status .pill")).to_have_text("running")
    expect(row.locator(".program")).to_have_text("gated")

    row.locator("a").click()
    expect(page.locator("#gantt")).to_be_visible()
    waiting = page.locator("#gantt .gantt-row[data-node=wait]")
    expect(page.locator("#gantt .gantt-row[data-node=open]")).to_have_attribute(
        "data-status", "running")
    expect(waiting).to_have_attribute("data-status", "pending")
    expect(waiting.locator(".bar")).to_be_hidden()

    (tmp_path / "first").touch()
    expect(waiting).to_have_attribute("data-status", "running")
    expect(waiting.locator(".bar")).to_be_visible()
    expect(page.locator("#dag .dag-node[data-node=wait]")).to_have_attribute(
        "data-status", "running")
    expect(page.locator("#dag .dag-node[data-node=open]")).to_have_attribute(
        "data-status", "succeeded")

    (tmp_path / "second").touch()
    expect(waiting).to_have_attribute("data-status", "succeeded")
    expect(page.locator("#run-status .pill")).to_have_text("succeeded")
    expect(page.locator("#cancel-run")).to_be_hidden()

    page.locator("#gantt .gantt-row[data-node=say]").click()
    expect(page.locator("#node-output")).to_have_text("ok")
    expect(page.locator("#node-detail [data-field=prompt_tokens] .value")).to_have_text(
        re.compile(r"^[1-9]"))
    expect(page.locator("#node-detail")).to_contain_text("The gates gave {{ wait.value }}")
    expect(page.locator("#run-outputs")).to_contain_text('"said": "ok"')

    shot = tmp_path / "run_page.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    page.click("#nav-runs")
    expect(row.locator(".status .pill")).to_have_text("succeeded")
    expect(row.locator(".tokens")).to_have_text(re.compile(r"^[1-9]\d* \+ [1-9]"))
    page.fill("#filter-text", "no-such-program")
    expect(row).to_be_hidden()
    page.fill("#filter-text", "gat")
    expect(row).to_be_visible()
    page.select_option("#filter-status", "failed")
    expect(row).to_be_hidden()


def test_a_running_run_is_cancelled_from_its_page(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    run_id = submit_from_page(page, "gated", gate_inputs(tmp_path))  # never opened
    page.locator(f"#runs-body tr[data-run='{run_id}'] a").click()
    expect(page.locator("#gantt .gantt-row[data-node=open]")).to_have_attribute(
        "data-status", "running")
    page.click("#cancel-run")
    expect(page.locator("#run-status .pill")).to_have_text("cancelled")
    expect(page.locator("#gantt .gantt-row[data-node=open]")).not_to_have_attribute(
        "data-status", "running")
    expect(page.locator("#cancel-run")).to_be_hidden()
    assert _status(server, run_id) == "cancelled"


def test_a_running_run_is_cancelled_from_the_table(
    page: Page, server: Server, tmp_path: Path
) -> None:
    sign_in(page, server)
    run_id = submit_from_page(page, "gated", gate_inputs(tmp_path))
    row = page.locator(f"#runs-body tr[data-run='{run_id}']")
    expect(row.locator(".status .pill")).to_have_text("running")
    row.locator("[data-action=cancel]").click()
    expect(row.locator(".status .pill")).to_have_text("cancelled")
    expect(row.locator("[data-action=cancel]")).to_be_hidden()
    assert _status(server, run_id) == "cancelled"


def test_the_page_shows_only_the_keys_tenant(page: Page, server: Server, tmp_path: Path) -> None:
    others = httpx.post(f"{server.url}/v1/runs", headers={"X-API-Key": OTHER_KEY}, timeout=10,
                        json={"program": "gated", "inputs": gate_inputs(tmp_path)})
    assert others.status_code == 202
    their_run = others.json()["run_id"]
    sign_in(page, server)
    mine = submit_from_page(page, "echo", {"text": "hello"})
    expect(page.locator(f"#runs-body tr[data-run='{mine}']")).to_be_visible()
    expect(page.locator(f"#runs-body tr[data-run='{their_run}']")).to_have_count(0)

    page.goto(f"{server.url}/#/runs/{their_run}")
    expect(page.locator(".run-head .error")).to_contain_text(f"No run {their_run} for this key")
    expect(page.locator("#gantt .gantt-row")).to_have_count(0)
    assert their_run not in page.url.split("#")[0]
    assert KEY not in page.url
    (tmp_path / "first").touch()
    (tmp_path / "second").touch()


def test_a_wrong_key_is_refused_and_never_put_in_a_url(page: Page, server: Server) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    sign_in_attempt = "not-a-key"
    page.goto(server.url)
    page.fill("#api-key", sign_in_attempt)
    page.click("#login-form button[type=submit]")
    expect(page.locator("#login-error")).to_have_text("That key was refused.")
    expect(page.locator("#shell")).to_be_hidden()
    sign_in(page, server)
    expect(page.locator("#scheduler-body")).to_contain_text("LLM calls in engine")
    assert requested and not [url for url in requested if KEY in url or sign_in_attempt in url]


def test_markup_in_a_run_is_shown_as_text(page: Page, server: Server) -> None:
    sign_in(page, server)
    markup = "<img id=injected src=x><b>bold</b>"
    run_id = submit_from_page(page, "echo", {"text": markup})
    page.goto(f"{server.url}/#/runs/{run_id}")
    expect(page.locator("#run-status .pill")).to_have_text("succeeded")
    expect(page.locator("#run-outputs")).to_contain_text(markup)
    expect(page.locator("#injected")).to_have_count(0)


def test_plan_tasks_are_nested_under_their_plan_node(page: Page, server: Server) -> None:
    sign_in(page, server)
    rows = page.evaluate("""async () => {
        const {timelineRows} = await import('/static/gantt.js');
        const nodes = new Map([
            ['solve/plan1/10', {id: 'solve/plan1/10', parent: 'solve', start: 0.5}],
            ['answer', {id: 'answer'}],
            ['solve', {id: 'solve'}],
            ['solve/plan1/2', {id: 'solve/plan1/2', start: 0.5}],
            ['solve/plan1/1', {id: 'solve/plan1/1', start: 0.2}],
        ]);
        return timelineRows(nodes, ['solve', 'answer'])
            .map(({node, depth, tasks}) => [node.id, depth, tasks]);
    }""")
    assert rows == [
        ["solve", 0, 3],
        ["solve/plan1/1", 1, 0],
        ["solve/plan1/2", 1, 0],
        ["solve/plan1/10", 1, 0],
        ["answer", 0, 0],
    ]


def _status(server: Server, run_id: str) -> str:
    shown = httpx.get(f"{server.url}/v1/runs/{run_id}", headers={"X-API-Key": KEY}, timeout=10)
    return str(shown.json()["status"])


def test_a_nodes_wait_in_the_scheduler_is_drawn_when_the_run_carries_it(
    page: Page, server: Server
) -> None:
    sign_in(page, server)
    strips = page.evaluate("""async () => {
        const {Gantt} = await import('/static/gantt.js');
        const gantt = new Gantt(() => {}, () => {});
        document.body.append(gantt.root);
        const nodes = new Map([
            ['a', {id: 'a', kind: 'llm', status: 'succeeded', start: 1, end: 3, queue_s: 1}],
            ['b', {id: 'b', kind: 'llm', status: 'succeeded', start: 0, end: 3}],
        ]);
        gantt.render(nodes, ['a', 'b'], 4, null);
        const strip = (id) => gantt.root.querySelector(`[data-node=${id}] .queue`);
        return [strip('a').hidden, parseFloat(strip('a').style.width), strip('b').hidden];
    }""")
    hidden_a, width_a, hidden_b = strips
    assert (hidden_a, hidden_b) == (False, True)
    assert width_a == pytest.approx(100 / (4 * 1.02))  # 1 s of a 4 s run, plus its margin


def store_preempted_run(server: Server, folder: Path) -> str:
    """A run of `PREEMPTED` made here, on virtual time, into the server's store as the
    key's tenant: on one slot under MLFQ, `short` preempts `long` at 3.5 s and gives
    the slot back at 15.5 s (a served run on the scripted engine has slots to spare)."""
    run_id = f"preempted-{folder.name}"
    store = RunStore(server.workdir / "store.db")
    inputs = {"counter": str(folder / "ticks")}
    now = time.time()
    store.create_run(RunRow(run_id=run_id, program="preempted", status=StoredStatus.RUNNING,
                            tenant=tenant_id(KEY), spec_text=PREEMPTED, inputs=inputs,
                            policy="mlfq", created_at=now, updated_at=now))
    backend = ScriptedBackend(respond=lambda r: " ".join(["w"] * 12), delay_s=1, per_chunk_s=1)
    scheduler = ProgramAwareScheduler([backend], "mlfq", max_in_flight=1,
                                      queues=QueueConfig(boundaries_s=(2.0,), beta=math.inf))
    tools = default_registry()
    tools.register(tick)
    runtime = Runtime(backend, tools=tools, scheduler=scheduler, store=store)

    async def run() -> None:
        result = await runtime.run(loads(PREEMPTED), inputs, run_id=run_id)
        assert result.nodes["long"].preemptions == 1, result.error

    anyio.run(run, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)})
    store.close()
    return run_id


def test_a_preempted_node_is_marked_on_its_bar_and_counted_in_its_detail(
    page: Page, server: Server, tmp_path: Path
) -> None:
    run_id = store_preempted_run(server, tmp_path)
    sign_in(page, server)
    page.goto(f"{server.url}/#/runs/{run_id}")
    expect(page.locator("#run-status .pill")).to_have_text("succeeded")
    long = page.locator("#gantt .gantt-row[data-node=long]")
    mark = long.locator(".preempt")
    expect(mark).to_have_count(1)
    expect(mark).to_have_attribute("data-at", "3.5")
    expect(mark).to_have_attribute("title", "a call preempted at 3.50 s, resumed at 15.5 s")
    expect(page.locator("#gantt .gantt-row[data-node=short] .preempt")).to_have_count(0)
    # The mark sits on the bar, where 3.5 s falls on the axis.
    bar, drawn = long.locator(".bar").bounding_box(), mark.bounding_box()
    track = long.locator(".track").bounding_box()
    assert bar is not None and drawn is not None and track is not None
    assert bar["x"] <= drawn["x"] <= bar["x"] + bar["width"]
    wall_s = httpx.get(f"{server.url}/v1/runs/{run_id}", headers={"X-API-Key": KEY},
                       timeout=10).json()["wall_s"]
    assert drawn["x"] - track["x"] == pytest.approx(track["width"] * 3.5 / (wall_s * 1.02),
                                                    abs=2)

    long.click()
    expect(page.locator("#node-detail [data-field=preemptions] .value")).to_have_text("1")
    expect(page.locator("#node-detail [data-field=preempted] .value")).to_have_text(
        "3.50 s → 15.5 s")
    expect(page.locator("#node-detail")).to_contain_text("preempted one of them")
    page.locator("#gantt .gantt-row[data-node=short]").click()
    expect(page.locator("#node-detail [data-field=preemptions] .value")).to_have_text("0")
    expect(page.locator("#node-detail [data-field=preempted]")).to_have_count(0)
