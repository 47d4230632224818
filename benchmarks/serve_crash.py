"""Crash test of `taskloom serve`: runs survive kill -9 of the server.

A server (the scripted backend, or with `--backend vllm` the embedded model in-process)
gets RUNS runs of a program whose tool nodes append a line
`RUN/NODE TOKEN` to a counter file when they finish. Between batches of submissions the
server is killed with SIGKILL at a random moment and started again on the same store.
At each kill the store is read: every node committed by then is "finished". At the end:
- every run reached `succeeded`;
- its outputs equal those of an uninterrupted run of the same inputs (in-process);
- no finished node ran again: the token the store kept for it is the last line the
  counter file has for that node, and was already the stored one at the kill.

    .venv/bin/python benchmarks/serve_crash.py --runs 200 --kills 5 -o results/serve_crash.json

On the embedded engine, in float32 (in bfloat16 vLLM's CPU build gives greedy answers
that change with the batch a call shares, so a resumed run's LLM output could differ
from the reference's for that reason alone). Each kill takes the server's whole process
group, the engine's own process included, as a crash of the machine would; the reference
outputs come from the same engine in this process, after the last server stopped:

    nice .venv/bin/python benchmarks/serve_crash.py --backend vllm --dtype float32 \
        --runs 30 --kills 5 -o results/serve/crash_embedded.json
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from taskloom.backends.base import Backend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.client import Client
from taskloom.orchestrator.result import NodeStatus
from taskloom.orchestrator.store import RunStore
from taskloom.program.load import loads
from taskloom.runtime import Runtime
from taskloom.tools.registry import default_registry, tool

ROOT = Path(__file__).resolve().parent.parent
TOOLS_MODULE = "crash_tools"

TOOLS_SOURCE = '''
import uuid

import anyio

from taskloom.tools.registry import tool


@tool
async def bump(counter: str, key: str, value: int = 0, sleep_s: float = 0.0) -> dict:
    """Wait, count one call in `counter`, pass `value + 1` on.

    Args:
        counter: the file to append to.
        key: what to count the call as.
        value: a number.
        sleep_s: seconds to wait first.
    """
    await anyio.sleep(sleep_s)
    token = uuid.uuid4().hex
    with open(counter, "a", encoding="utf-8") as file:
        file.write(f"{key} {token}\\n")
    return {"value": value + 1, "token": token}
'''

SPEC = """\
name: crashable
inputs:
  counter: {type: string}
  key: {type: string}
  n: {type: integer}
nodes:
  a: {kind: tool, tool: bump, args: {counter: "{{ inputs.counter }}", key: "{{ inputs.key }}/a",
      value: "{{ inputs.n }}", sleep_s: 0.05}}
  b: {kind: tool, tool: bump, args: {counter: "{{ inputs.counter }}", key: "{{ inputs.key }}/b",
      value: "{{ a.value * 2 }}", sleep_s: 0.3}}
  c: {kind: tool, tool: bump, args: {counter: "{{ inputs.counter }}", key: "{{ inputs.key }}/c",
      value: "{{ a.value * 3 }}", sleep_s: 0.15}}
  d: {kind: tool, tool: bump, args: {counter: "{{ inputs.counter }}", key: "{{ inputs.key }}/d",
      value: "{{ b.value + c.value }}", sleep_s: 0.1}}
  words: {kind: llm, prompt: "total {{ d.value }}", max_tokens: 24}
outputs:
  total: "{{ d.value }}"
  words: "{{ words }}"
"""
TOOL_NODES = ("a", "b", "c", "d")


@dataclass
class CrashServer:
    workdir: Path
    port: int
    engine_args: list[str] = field(default_factory=lambda: ["--backend", "scripted"])
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    start_s: list[float] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(self.workdir)])
        env.pop("TASKLOOM_API_KEYS", None)
        log = (self.workdir / f"server-{self.starts}.log").open("wb")
        self.starts += 1
        began = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskloom", "serve", *self.engine_args,
             "--port", str(self.port), "--store", str(self.workdir / "store.db"),
             "--tools", TOOLS_MODULE, "--max-runs-in-flight", "100000"],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, engine processes included
        )
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited; see {log.name}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        self.start_s.append(time.monotonic() - began)

    def kill(self) -> None:
        """kill -9 of the server and every process it started (vLLM's engine core)."""
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def committed_tokens(store_path: Path) -> tuple[dict[str, dict[str, str]], int]:
    """run -> node -> token of every tool node on disk now; and how many runs were running."""
    store = RunStore(store_path)
    try:
        tokens: dict[str, dict[str, str]] = {}
        running = 0
        for row in store.runs():
            running += row.status.value == "running"
            tokens[row.run_id] = {
                node_id: node.output["token"]
                for node_id, node in store.nodes(row.run_id).items()
                if node_id in TOOL_NODES and node.status is NodeStatus.SUCCEEDED
            }
        return tokens, running
    finally:
        store.close()


def counter_lines(counter: Path) -> list[tuple[str, str]]:
    lines = counter.read_text(encoding="utf-8").splitlines() if counter.exists() else []
    return [(line.split(" ")[0], line.split(" ")[1]) for line in lines if " " in line]


async def reference_outputs(
    inputs: list[dict[str, Any]], workdir: Path, backend: str = "scripted",
    dtype: str | None = None,
) -> list[dict[str, Any]]:
    """Each run's outputs with nothing interrupted, in this process, on the same kind of
    engine as the server's."""

    @tool
    async def bump(counter: str, key: str, value: int = 0, sleep_s: float = 0.0) -> dict[str, Any]:
        """Pass `value + 1` on.

        Args:
            counter: unused here.
            key: unused here.
            value: a number.
            sleep_s: unused here.
        """
        return {"value": value + 1, "token": ""}

    tools = default_registry(root=workdir)
    tools.register(bump)
    engine: Backend = (ScriptedBackend() if backend == "scripted" else
                       VLLMBackend(**({"dtype": dtype} if dtype else {})))
    program = loads(SPEC)
    outputs: list[dict[str, Any]] = [{} for _ in inputs]
    async with engine:
        runtime = Runtime(engine, tools=tools)

        async def one(i: int) -> None:
            outputs[i] = (await runtime.run(program, inputs[i])).outputs

        async with anyio.create_task_group() as group:
            for i in range(len(inputs)):
                group.start_soon(one, i)
    return outputs


def crash_test(runs: int, kills: int, workdir: Path, seed: int = 0, backend: str = "scripted",
               dtype: str | None = None) -> dict[str, Any]:
    """Run the whole test; returns the figures and every problem found (none: passed)."""
    rng = random.Random(seed)
    (workdir / f"{TOOLS_MODULE}.py").write_text(TOOLS_SOURCE)
    counter = workdir / "counter.txt"
    engine_args = ["--backend", backend, *(["--dtype", dtype] if dtype else [])]
    server = CrashServer(workdir, free_port(), engine_args)
    inputs = [{"counter": str(counter), "key": f"r{i}", "n": i} for i in range(runs)]
    run_ids: list[str] = []
    snapshots: list[dict[str, dict[str, str]]] = []
    in_flight_at_kill: list[int] = []
    began = time.monotonic()
    server.start()
    batches = [inputs[len(inputs) * k // (kills + 1): len(inputs) * (k + 1) // (kills + 1)]
               for k in range(kills + 1)]
    try:
        for number, batch in enumerate(batches):
            with Client(server.url) as client:
                run_ids += [client.submit(SPEC, inputs=each) for each in batch]
            if number == kills:
                break
            time.sleep(rng.uniform(0.05, 0.6))  # a random moment while runs are in flight
            server.kill()
            snapshot, running = committed_tokens(workdir / "store.db")
            snapshots.append(snapshot)
            in_flight_at_kill.append(running)
            server.start()
        with Client(server.url) as client:
            results = [client.wait(run_id) for run_id in run_ids]
    finally:
        server.stop()
    elapsed = time.monotonic() - began
    expected = anyio.run(reference_outputs, inputs, workdir, backend, dtype)
    problems = check(run_ids, results, expected, snapshots, counter_lines(counter))
    executions = len(counter_lines(counter))
    return {
        "runs": runs,
        "kills": kills,
        "seed": seed,
        "backend": backend,
        "dtype": dtype,
        "succeeded": sum(r["status"] == "succeeded" for r in results),
        "runs_running_at_each_kill": in_flight_at_kill,
        "tool_nodes": runs * len(TOOL_NODES),
        "tool_executions": executions,
        "executions_beyond_one_per_node": executions - runs * len(TOOL_NODES),
        "server_start_s": [round(s, 2) for s in server.start_s],
        "wall_s": round(elapsed, 2),
        "problems": problems,
    }


def check(
    run_ids: list[str],
    results: list[dict[str, Any]],
    expected: list[dict[str, Any]],
    snapshots: list[dict[str, dict[str, str]]],
    lines: list[tuple[str, str]],
) -> list[str]:
    problems: list[str] = []
    last_token: dict[str, str] = {}
    for key, token in lines:
        last_token[key] = token
    for index, (run_id, result) in enumerate(zip(run_ids, results, strict=True)):
        if result["status"] != "succeeded":
            problems.append(f"run {run_id}: {result['status']} ({result.get('error')})")
            continue
        if result["outputs"] != expected[index]:
            problems.append(f"run {run_id}: outputs {result['outputs']} != {expected[index]}")
        final = {n: result["nodes"][n]["output"]["token"] for n in TOOL_NODES}
        for node_id, token in final.items():
            key = f"r{index}/{node_id}"
            if last_token.get(key) != token:
                problems.append(f"{key}: the stored result is not its last execution")
            for at, snapshot in enumerate(snapshots):
                kept = snapshot.get(run_id, {}).get(node_id)
                if kept is not None and kept != token:
                    problems.append(f"{key}: finished before kill {at + 1}, then ran again")
    return problems


def _summary(figures: Mapping[str, Any]) -> str:
    return (f"{figures['succeeded']}/{figures['runs']} runs succeeded through "
            f"{figures['kills']} kills in {figures['wall_s']} s; "
            f"{figures['executions_beyond_one_per_node']} tool executions beyond one per node; "
            f"problems: {len(figures['problems'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backend", choices=("scripted", "vllm"), default="scripted",
                        help="the server's engine: scripted, or the embedded model in-process")
    parser.add_argument("--dtype", default=None,
                        help="the vllm engine's dtype (float32 for answers that do not "
                        "depend on the batch)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/serve_crash.json"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-crash-") as folder:
        figures = crash_test(args.runs, args.kills, Path(folder), args.seed, args.backend,
                             args.dtype)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(figures, indent=2))
    print(_summary(figures))
    sys.exit(1 if figures["problems"] else 0)


if __name__ == "__main__":
    main()
