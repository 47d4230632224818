"""Hostile specs through `taskloom serve` (issue 13): do other tenants keep their speed?

A server on loopback, with two API keys (two tenants). Tenant B runs a small program
(two chained LLM calls on the simulated engine, which runs on real time under asyncio)
one run at a time, and each run's latency is measured from the POST that submits it to
the `result` event of its stream. First B runs alone; then tenant A keeps submitting
every hostile spec of issue 13 (`HOSTILE_CASES`: alias bombs, huge numbers, template
loops that hit the render deadline, control characters, remote `$ref`, import tools,
calculator and SQLite bombs, ...) from a few threads while B runs again.

Written: both latency distributions (p50/p95/max), their ratio, and the status code and
outcome of every hostile submission, with whether it was the expected one (a 4xx with a
located message, or a run that failed with a node error naming the limit).

    .venv/bin/python benchmarks/serve_hostile.py                 # 40 runs per phase
    .venv/bin/python benchmarks/serve_hostile.py --runs 20 -o results/serve_hostile.json

tests/serve/test_hostile.py submits the same `HOSTILE_CASES` and asserts each outcome.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
KEYS = {"a": "key-hostile-tenant", "b": "key-normal-tenant"}
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 60.0  # a run still going after this is reported as hung
SPEC_LIMIT_BYTES = 256 * 1024  # the server's default --max-spec-bytes
NODE_LIMIT = 500  # the server's default --max-nodes

NORMAL_SPEC = """\
name: normal
inputs:
  topic: {type: string, default: tides}
nodes:
  outline: {kind: llm, prompt: "Outline {{ inputs.topic }}.", max_tokens: 24}
  answer: {kind: llm, prompt: "Write from {{ outline }}", max_tokens: 24}
  count: {kind: tool, tool: calculator, args: {expression: "2 * 21"}}
outputs:
  answer: "{{ answer }}"
  count: "{{ count }}"
"""


# ------------------------------------------------------------------ the hostile cases


@dataclass(frozen=True)
class HostileCase:
    """A spec a hostile tenant sends, and what the server must answer: `status` 422 or
    413 (refused, the message containing `expect`), or 202 and a run that ends `failed`
    with `expect` in a node's error or the run's."""

    name: str
    spec: str
    status: int
    expect: str
    inputs: dict[str, Any] = field(default_factory=dict)


def _nesting(depth: int) -> str:
    return "[" * depth + "]" * depth


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["name: bomb", "anchors:", "  l0: &l0 [x]"]
    for level in range(1, levels + 1):
        lines.append(f"  l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    lines += [f"description: *l{levels}", "nodes: {a: {kind: llm, prompt: hi}}"]
    return "\n".join(lines) + "\n"


def _llm(field_text: str, extra: str = "") -> str:
    return f"name: h\nnodes:\n  a: {{kind: llm, prompt: {field_text}{extra}}}\n"


def _output(template: str) -> str:
    return ("name: h\nnodes:\n  a: {kind: llm, prompt: hi}\n"
            f"outputs:\n  o: {json.dumps(template)}\n")


def _tool(name: str, args: dict[str, Any]) -> str:
    return f"name: h\nnodes:\n  a: {{kind: tool, tool: {name}, args: {json.dumps(args)}}}\n"


def _nodes(count: int, cycle: bool) -> str:
    lines = ["name: many", "nodes:"]
    for i in range(count):
        after = f"n{(i + 1) % count}" if cycle else f"n{i - 1}" if i else None
        needs = f", after: [{after}]" if after else ""
        lines.append(f"  n{i}: {{kind: llm, prompt: hi{needs}}}")
    return "\n".join(lines) + "\n"


# Loops that pass the size limits (each range is within max_collection_items) and so
# run until the render deadline stops them.
DEADLINE_LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
POWER = "{{ 10**(10**8) > 0 }}"
LOCATED = "<request>:"  # every spec error starts FILE:LINE:COL

HOSTILE_CASES: tuple[HostileCase, ...] = (
    # The loader: control characters, bad tags, huge numbers, depth, alias bombs.
    HostileCase("nul character", "name: x\x00\nnodes: {}\n", 422, "control character"),
    HostileCase("bell character", "name: x\x07\nnodes: {}\n", 422, "control character"),
    HostileCase("!!int abc", "name: !!int abc\nnodes: {}\n", 422, "!!int"),
    HostileCase("!!float x", "name: x\ndefaults: {temperature: !!float x}\nnodes: {}\n", 422,
                "!!float"),
    HostileCase("!!timestamp", "name: x\ndescription: !!timestamp 2020-13-45\nnodes: {}\n", 422,
                "!!timestamp"),
    HostileCase("5000-digit seed", "name: x\ndefaults: {seed: " + "9" * 5000 + "}\nnodes: {}\n",
                422, "digits"),
    HostileCase("deep nesting", "name: x\nnodes: {}\ndeep: " + _nesting(1000) + "\n", 422,
                "nests deeper"),
    HostileCase("alias bomb 9x9", _alias_bomb(9, 9), 422, "aliases expand"),
    HostileCase("recursive alias", "name: x\nnodes: {}\nloop: &a [*a]\n", 422, LOCATED),
    HostileCase("$schema: [1]",
                "name: x\nnodes: {a: {kind: llm, prompt: hi, output_schema: {$schema: [1]}}}\n",
                422, "$schema"),
    HostileCase("schema type 42",
                "name: x\ninputs: {y: {type: array, items: {type: 42}}}\nnodes: {}\n", 422,
                "not a valid JSON schema"),
    # Schemas fetch nothing.
    HostileCase("$ref http", _llm("hi", ', output_schema: {$ref: "http://127.0.0.1:9/s.json"}'),
                422, "fetches nothing"),
    HostileCase("$ref file", _llm("hi", ', output_schema: {$ref: "file:///etc/passwd"}'),
                422, "fetches nothing"),
    HostileCase("$ref file in input items",
                'name: h\ninputs:\n  y: {type: array, items: {$ref: "file:///etc/passwd"}}\n'
                "nodes:\n  a: {kind: llm, prompt: hi}\n", 422, "fetches nothing", {"y": [1]}),
    # Import tools: refused over HTTP before anything is imported.
    HostileCase("import this:x", _tool("'this:x'", {}), 422, "imports Python code"),
    HostileCase("import os:system", _tool("'os:system'", {"command": "true"}), 422,
                "imports Python code"),
    HostileCase("import ensure_dir", _tool("'pip._internal.utils.misc:ensure_dir'",
                                           {"path": "/tmp/x"}), 422, "imports Python code"),
    HostileCase("import taskloom.cli:graph", _tool("'taskloom.cli:graph'", {}), 422,
                "imports Python code"),
    # Size: refused before parsing.
    HostileCase("oversized spec", "name: big\ndescription: " + "x" * SPEC_LIMIT_BYTES
                + "\nnodes: {}\n", 413, "exceeds the server's limit"),
    HostileCase("too many nodes", _nodes(NODE_LIMIT + 1, cycle=False), 413, "at most"),
    HostileCase("cycle of 500", _nodes(NODE_LIMIT, cycle=True), 422, "cycle"),
    # Templates: refused at compile time where the text shows it, else a node error.
    HostileCase("400-term sum", _llm(json.dumps("{{ " + " + ".join(["1"] * 400) + " }}")), 422,
                "max_nesting"),
    HostileCase("power in when", _llm("hi", f", when: {json.dumps(POWER)}"), 202,
                "max_integer_bits"),
    HostileCase("power in prompt", _llm(json.dumps(POWER)), 202, "max_integer_bits"),
    HostileCase("range(10**9)", _llm(json.dumps("{% for i in range(10**9) %}{% endfor %}")),
                202, "MAX_RANGE"),
    HostileCase("'a' * 10**9", _llm(json.dumps("{{ 'a' * 10**9 }}")), 202, "max_output_chars"),
    HostileCase("center(2e9)", _llm(json.dumps("{{ 'a'|center(2000000000) }}")), 202,
                "max_output_chars"),
    HostileCase("format width", _llm(json.dumps("{{ '{0:>999999999}'.format(1) }}")), 202,
                "max_output_chars"),
    HostileCase("recursive macro",
                _llm(json.dumps("{% macro m(n) %}{{ m(n) }}{% endmacro %}{{ m(1) }}")), 202,
                "recursed too deeply"),
    HostileCase("loop to deadline (prompt)", _llm(json.dumps(DEADLINE_LOOP)), 202,
                "time limit"),
    HostileCase("loop to deadline (output)", _output(DEADLINE_LOOP), 202, "time limit"),
    HostileCase("'a' * 10**9 (output)", _output("{{ 'a' * 10**9 }}"), 202, "max_output_chars"),
    # Tools.
    HostileCase("calculator round", _tool("calculator", {"expression": "round(1, -10**9)"}),
                202, "calculator"),
    HostileCase("calculator 9**9**9", _tool("calculator", {"expression": "9**9**9"}), 202,
                "calculator"),
    HostileCase("sqlite printf", _tool("sqlite_query", {
        "database": "db.sqlite", "sql": "SELECT printf('%.*c', 900000000, 'x')"}), 202,
                "sqlite_query"),
    HostileCase("sqlite zeroblob", _tool("sqlite_query", {
        "database": "db.sqlite", "sql": "SELECT zeroblob(900000000)"}), 202, "sqlite_query"),
    HostileCase("sqlite fts3_tokenizer", _tool("sqlite_query", {
        "database": "db.sqlite", "sql": "SELECT fts3_tokenizer('simple')"}), 202,
                "sqlite_query"),
    HostileCase("read /etc/passwd", _tool("read_file", {"path": "/etc/passwd"}), 202,
                "outside the allowed root"),
    HostileCase("http_get metadata", _tool("http_get", {"url": "http://169.254.169.254/"}),
                202, "not allowed"),
)


def prepare_tools_root(root: Path) -> None:
    """The server's --tools-root: a database for the SQLite cases to aim at."""
    with sqlite3.connect(root / "db.sqlite") as connection:
        connection.execute("CREATE TABLE IF NOT EXISTS t(x)")
    connection.close()


# ------------------------------------------------------------------ one submission


@dataclass(frozen=True)
class Outcome:
    """What the server did with one hostile submission."""

    case: str
    status_code: int
    run_status: str | None  # the run's terminal status, for an accepted spec
    message: str  # the refusal's messages, or the run's and its nodes' errors
    seconds: float  # from the POST to the answer (refused) or to the run's end
    expected: bool

    @staticmethod
    def judge(case: HostileCase, status_code: int, run_status: str | None, message: str,
              seconds: float) -> Outcome:
        if case.status == 202:
            ok = status_code == 202 and run_status == "failed" and case.expect in message
        else:
            ok = status_code == case.status and case.expect in message
            if status_code == 422:
                ok = ok and LOCATED in message
        return Outcome(case.name, status_code, run_status, message[:500], round(seconds, 3), ok)


def refusal_text(reply: httpx.Response) -> str:
    try:
        body = reply.json()
    except ValueError:
        return reply.text
    return "\n".join([str(body.get("error", "")), *map(str, body.get("errors", []))])


def run_errors(run: dict[str, Any]) -> str:
    errors = [str(run.get("error") or "")]
    errors += [f"{name}: {node.get('error')}" for name, node in run.get("nodes", {}).items()
               if node.get("error")]
    return "\n".join(errors)


def wait_for_end(http: httpx.Client, run_id: str, timeout_s: float) -> dict[str, Any]:
    """The run's `run --json` object once it ended, read from its event stream; a run
    still going after `timeout_s` comes back as it stands, still `running`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with http.stream("GET", f"/v1/runs/{run_id}/events",
                             timeout=httpx.Timeout(10, read=max(0.1, deadline - time.monotonic()))
                             ) as reply:
                for kind, data in _sse(reply.iter_lines()):
                    if kind == "result":
                        result: dict[str, Any] = json.loads(data)
                        return result
        except httpx.TimeoutException:
            break
        except httpx.TransportError:
            time.sleep(0.05)
    current: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
    return current


def _sse(lines: Iterator[str]) -> Iterator[tuple[str, str]]:
    kind, data = "message", ""
    for line in lines:
        if not line:
            if data:
                yield kind, data
            kind, data = "message", ""
        elif line.startswith("event:"):
            kind = line[6:].strip()
        elif line.startswith("data:"):
            data += line[5:].strip()


def submit_hostile(http: httpx.Client, case: HostileCase, timeout_s: float) -> Outcome:
    began = time.perf_counter()
    reply = http.post("/v1/runs", json={"spec": case.spec, "inputs": case.inputs})
    if reply.status_code != 202:
        return Outcome.judge(case, reply.status_code, None, refusal_text(reply),
                             time.perf_counter() - began)
    run = wait_for_end(http, reply.json()["run_id"], timeout_s)
    return Outcome.judge(case, 202, str(run.get("status")), run_errors(run),
                         time.perf_counter() - began)


def normal_run_latency(http: httpx.Client, timeout_s: float) -> tuple[float, str]:
    """Seconds from submit to the end of one normal run, and how it ended."""
    began = time.perf_counter()
    reply = http.post("/v1/runs", json={"spec": NORMAL_SPEC})
    reply.raise_for_status()
    run = wait_for_end(http, reply.json()["run_id"], timeout_s)
    return time.perf_counter() - began, str(run.get("status"))


# ------------------------------------------------------------------ the server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class BenchServer:
    """`taskloom serve` in a subprocess on a free loopback port."""

    def __init__(self, workdir: Path, backend: str) -> None:
        self.workdir = workdir
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
        env.pop("TASKLOOM_API_KEYS", None)
        keys = [arg for key in KEYS.values() for arg in ("--api-key", key)]
        self.log = (workdir / "server.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskloom", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), "--backend", backend,
             "--store", str(workdir / "store.db"), "--tools-root", str(workdir), *keys],
            cwd=workdir, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self.healthy():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start; see {workdir / 'server.log'}")
            time.sleep(0.1)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, tenant: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30,
                            headers={"Authorization": f"Bearer {KEYS[tenant]}"})

    def healthy(self) -> bool:
        try:
            return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


# ------------------------------------------------------------------ the measurement


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def distribution(values: list[float]) -> dict[str, Any]:
    return {
        "runs": len(values),
        "p50_s": round(percentile(values, 0.5), 4),
        "p95_s": round(percentile(values, 0.95), 4),
        "max_s": round(max(values), 4),
        "mean_s": round(statistics.fmean(values), 4),
        "all_s": [round(v, 4) for v in values],
    }


def normal_phase(server: BenchServer, runs: int) -> tuple[list[float], list[str], list[float]]:
    """Tenant B's run latencies and statuses, and /healthz latencies meanwhile."""
    latencies: list[float] = []
    statuses: list[str] = []
    health: list[float] = []
    stop = threading.Event()
    prober = threading.Thread(target=probe_health, args=(server, stop, health))
    prober.start()
    try:
        with server.client("b") as http:
            for _ in range(runs):
                seconds, status = normal_run_latency(http, RUN_TIMEOUT_S)
                latencies.append(seconds)
                statuses.append(status)
    finally:
        stop.set()
        prober.join()
    return latencies, statuses, health


def probe_health(server: BenchServer, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        while not stop.wait(0.05):
            began = time.perf_counter()
            http.get("/healthz")
            latencies.append(time.perf_counter() - began)


def hostile_loop(server: BenchServer, stop: threading.Event, outcomes: list[Outcome],
                 worker: int, deadline: float) -> None:
    """Submit the hostile cases round and round (each worker starting at its own
    offset) until `stop` or `deadline`."""
    with server.client("a") as http:
        index = worker * 7
        while not stop.is_set() and time.monotonic() < deadline:
            case = HOSTILE_CASES[index % len(HOSTILE_CASES)]
            index += 1
            try:
                outcomes.append(submit_hostile(http, case, RUN_TIMEOUT_S))
            except httpx.HTTPError as exc:
                outcomes.append(Outcome(case.name, -1, None, f"{type(exc).__name__}: {exc}",
                                        0.0, False))


def measure(backend: str, runs: int, hostile_workers: int, max_seconds: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="serve-hostile-") as folder:
        workdir = Path(folder)
        prepare_tools_root(workdir)
        server = BenchServer(workdir, backend)
        try:
            normal_phase(server, 3)  # warm-up: imports, first compiles
            alone, alone_status, health_alone = normal_phase(server, runs)
            stop = threading.Event()
            outcomes: list[Outcome] = []
            deadline = time.monotonic() + max_seconds
            workers = [threading.Thread(target=hostile_loop,
                                        args=(server, stop, outcomes, w, deadline))
                       for w in range(hostile_workers)]
            for thread in workers:
                thread.start()
            try:
                time.sleep(0.5)  # let the hostile tenant get going first
                loaded, loaded_status, health_loaded = normal_phase(server, runs)
            finally:
                stop.set()
                for thread in workers:
                    thread.join()
            healthy_after = server.healthy()
        finally:
            server.stop()
    return {
        "alone": distribution(alone),
        "with_hostile": distribution(loaded),
        "ratio_p50": round(percentile(loaded, 0.5) / percentile(alone, 0.5), 3),
        "ratio_p95": round(percentile(loaded, 0.95) / percentile(alone, 0.95), 3),
        "healthz_alone": distribution(health_alone),
        "healthz_with_hostile": distribution(health_loaded),
        "normal_runs_not_succeeded": sum(s != "succeeded" for s in alone_status + loaded_status),
        "healthy_after": healthy_after,
        "hostile": {
            "submissions": len(outcomes),
            "unexpected": sum(not o.expected for o in outcomes),
            "server_errors_5xx": sum(o.status_code >= 500 for o in outcomes),
            "hung": sum(o.run_status == "running" for o in outcomes),
            "by_case": _by_case(outcomes),
            "outcomes": [asdict(o) for o in outcomes],
        },
    }


def _by_case(outcomes: list[Outcome]) -> dict[str, dict[str, Any]]:
    cases: dict[str, dict[str, Any]] = {}
    for outcome in outcomes:
        entry = cases.setdefault(outcome.case, {"submissions": 0, "expected": 0, "answers": {},
                                                "max_seconds": 0.0, "example": outcome.message})
        entry["submissions"] += 1
        entry["expected"] += outcome.expected
        answer = f"{outcome.status_code}" + (f" {outcome.run_status}" if outcome.run_status else "")
        entry["answers"][answer] = entry["answers"].get(answer, 0) + 1
        entry["max_seconds"] = max(entry["max_seconds"], outcome.seconds)
    return cases


def _line(label: str, dist: dict[str, Any]) -> str:
    return (f"  {label:16s}p50 {dist['p50_s'] * 1000:7.1f} ms   p95 {dist['p95_s'] * 1000:7.1f} ms"
            f"   max {dist['max_s'] * 1000:7.1f} ms")


def summary(figures: dict[str, Any]) -> str:
    alone, loaded, hostile = figures["alone"], figures["with_hostile"], figures["hostile"]
    lines = [
        f"tenant B, {alone['runs']} runs each, submit -> succeeded:",
        _line("alone:", alone),
        _line("hostile tenant:", loaded),
        f"  ratio:          p50 {figures['ratio_p50']:.2f}x   p95 {figures['ratio_p95']:.2f}x",
        f"  normal runs not succeeded: {figures['normal_runs_not_succeeded']}",
        "GET /healthz every 50 ms (how long the event loop keeps a request waiting):",
        _line("alone:", figures["healthz_alone"]),
        _line("hostile tenant:", figures["healthz_with_hostile"]),
        f"tenant A: {hostile['submissions']} hostile submissions, {hostile['unexpected']} "
        f"unexpected, {hostile['server_errors_5xx']} 5xx, {hostile['hung']} hung; "
        f"server healthy after: {figures['healthy_after']}",
    ]
    for name, entry in hostile["by_case"].items():
        answers = ", ".join(f"{k} x{v}" for k, v in entry["answers"].items())
        mark = "ok " if entry["expected"] == entry["submissions"] else "BAD"
        lines.append(f"  {mark} {name:28s} {answers:18s} max {entry['max_seconds']:6.2f} s")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="tenant B's runs per phase")
    parser.add_argument("--hostile-workers", type=int, default=2,
                        help="threads of tenant A submitting hostile specs")
    parser.add_argument("--backend", default="sim", choices=["sim", "scripted"])
    parser.add_argument("--max-seconds", type=float, default=300.0,
                        help="stop the hostile tenant after this long whatever happens")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/serve_hostile.json"))
    args = parser.parse_args()
    began = time.perf_counter()
    figures = measure(args.backend, args.runs, args.hostile_workers, args.max_seconds)
    figures["config"] = {"backend": args.backend, "runs": args.runs,
                         "hostile_workers": args.hostile_workers,
                         "cases": len(HOSTILE_CASES), "python": platform.python_version(),
                         "cpus": os.cpu_count(), "wall_s": round(time.perf_counter() - began, 1)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(summary(figures))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
