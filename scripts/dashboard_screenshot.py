"""Regenerate the README's picture of the dashboard's run page, taken during a live run.

    .venv/bin/python scripts/dashboard_screenshot.py      # -> results/dashboard/run_page.png

It starts `taskloom serve`'s app in this process on a free loopback port, submits four
runs of a trip-planning program (an LLMCompiler `plan` node whose tasks call a slow
`search` tool, and LLM nodes around it), opens the page of the first run in the system's
headless Chromium, and takes the picture while the plan's tasks are running.

The engine is the scripted test double, answering with fixed texts a word at a time
(slow enough to watch), at most two calls at once, so the scheduler has calls waiting:
the picture shows the dashboard, not a model's answers. `taskloom serve` opens its engine
by name with no options, so this script swaps in that scripted engine for `open_backend`.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any
from unittest import mock

import anyio
import httpx
import uvicorn
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from taskloom.backends.base import GenerateRequest  # noqa: E402
from taskloom.backends.scripted import ScriptedBackend  # noqa: E402
from taskloom.serve import services  # noqa: E402
from taskloom.serve.app import create_app  # noqa: E402
from taskloom.serve.config import ServeConfig  # noqa: E402
from taskloom.tools.registry import tool  # noqa: E402

KEY = "dashboard-demo"
CITIES = ["Lisbon", "Kyoto", "Montreal", "Nairobi"]
WAIT_MS = 60_000

PROGRAM = """\
name: trip_research
description: Plan a city trip; a planner looks facts up in parallel, LLM calls write it up.
inputs:
  city: {type: string, default: Lisbon}
nodes:
  brief: {kind: llm, prompt: "Write a one-line brief for a trip to {{ inputs.city }}."}
  facts:
    kind: plan
    question: "What should a first-time visitor to {{ inputs.city }} know? {{ brief }}"
    tools: [search, calculator]
  weather: {kind: tool, tool: search, args: {query: "{{ inputs.city }} weather in May"}}
  sights: {kind: llm, prompt: "List five sights in {{ inputs.city }} for: {{ brief }}"}
  food: {kind: llm, prompt: "Name three dishes to try in {{ inputs.city }}."}
  itinerary:
    kind: llm
    prompt: "A three-day plan for {{ inputs.city }} from {{ facts }}, {{ sights }},
      {{ food }} and {{ weather.text }}"
  review: {kind: llm, prompt: "Check this plan for gaps: {{ itinerary }}"}
outputs:
  itinerary: "{{ itinerary }}"
  review: "{{ review }}"
"""

PLAN = """Thought: four lookups at once, then the cost
1. search(query="getting around by tram and metro")
2. search(query="neighbourhoods to stay in")
3. search(query="museum opening hours")
4. search(query="day trips by train")
5. calculator(expression="3 * 28 + 2 * 15")
6. join()
"""
FINISH = ("Thought: enough to answer\nAction: Finish(Buy a 72-hour transit pass, stay "
          "central, book the big museums ahead; about 114 euros for passes and tickets.)")
PROSE = ("The old town rewards slow walking: start early at the viewpoints, take the tram "
         "across the hills, stop for coffee and pastries, and keep the afternoon for the "
         "river front and a long dinner in one of the small family places nearby.")


@tool
async def search(query: str) -> dict[str, Any]:
    """Look something up (a stand-in that takes a second or two).

    Args:
        query: what to look up.
    """
    digest = hashlib.sha256(query.encode()).digest()
    await anyio.sleep(1.2 + digest[0] / 128)
    return {"query": query, "text": f"notes on {query}"}


def answer(request: GenerateRequest) -> str:
    purpose = request.call_id.split("/")[-2]
    if purpose.startswith("plan"):
        return PLAN
    if purpose.startswith("join"):
        return FINISH
    return PROSE


def demo_engine(name: str, **_: Any) -> ScriptedBackend:
    return ScriptedBackend(respond=answer, delay_s=0.2, per_chunk_s=0.06, max_in_flight=2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(workdir: Path, port: int) -> uvicorn.Server:
    specs = workdir / "specs"
    specs.mkdir()
    (specs / "trip_research.yaml").write_text(PROGRAM)
    config = ServeConfig(backend="scripted", store=workdir / "store.db", specs=specs,
                         api_keys=(KEY,), tool_modules=(__name__,), port=port)
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 60
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    return server


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs/pictures/run_page.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("no Chromium on PATH: scripts/install.sh installs it")
    port = free_port()
    # The scripted engine with delays in place of the one `serve` opens by name.
    with tempfile.TemporaryDirectory() as folder, \
            mock.patch.object(services, "open_backend", demo_engine):
        server = start_server(Path(folder), port)
        url = f"http://127.0.0.1:{port}"
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1480, "height": 1180})
            expect.set_options(timeout=WAIT_MS)
            page.goto(url)
            page.fill("#api-key", KEY)
            page.click("#login-form button[type=submit]")
            expect(page.locator("#scheduler-body")).to_be_visible()
            # Submitted once the page is open, so its scheduler history covers the runs.
            run_ids = [
                httpx.post(f"{url}/v1/runs", headers={"X-API-Key": KEY}, timeout=30,
                           json={"program": "trip_research", "inputs": {"city": city}}
                           ).json()["run_id"]
                for city in CITIES
            ]
            page.goto(f"{url}/#/runs/{run_ids[0]}")
            gantt = page.locator("#gantt")
            # The moment worth a picture: some of the plan's tasks done, some still running.
            expect(gantt.locator(".gantt-row.task[data-status=running]")).not_to_have_count(0)
            expect(gantt.locator(".gantt-row.task[data-status=succeeded]")).not_to_have_count(0)
            expect(gantt.locator(".gantt-row[data-node=sights][data-status=succeeded]")
                   ).to_have_count(1)
            gantt.locator(".gantt-row[data-node=sights]").click()
            expect(page.locator("#node-output")).to_contain_text("old town")
            running = gantt.locator(".gantt-row[data-status=running]")
            expect(running).not_to_have_count(0)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            print(f"wrote {args.out} ({running.count()} nodes running in the picture)")
            browser.close()
        server.should_exit = True
        time.sleep(1)


if __name__ == "__main__":
    main()
