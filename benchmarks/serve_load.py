"""Load test of `taskloom serve` on the simulated H100, over real HTTP.

A real `taskloom serve --backend sim` subprocess (the engine in real time, or `--sim-speed`
times faster) gets RUNS programs of the mixed workload (the chat, ReAct tool-use and
LATS tree-search programs of `taskloom bench mixed`), each sent as spec text with its
inputs by one of CLIENTS concurrent clients (threads, each with its own API key, so each
is a tenant), at Poisson arrival times (`--rate` programs per simulated second). Then:

- lost: runs that did not reach a final status (read from the server's store after it
  stopped, for every run id a client got back), plus submissions that were refused;
- submit latency (the POST /v1/runs round trip) p50/p99, and how late clients were;
- the server's peak RSS (VmHWM of its process) and its CPU time;
- program latency (the run's `finished_at - created_at` in the store, wall seconds) per
  policy, fcfs against plas, mean/p50/p99, and per program kind.

One scheduler per policy: the server keeps one scheduler per policy, shared by every run
of that policy, all over the one engine. So runs of fcfs and plas submitted to one server
at the same time would go through two schedulers, each handing the engine its own calls.
The default (`--mode rounds`) therefore runs one round per policy: a fresh server started
with `--policy P`, the same programs at the same arrival times, every run through that one
scheduler. `--mode shared` submits both policies' runs to one server at once (alternating)
and says in the JSON that they went through two schedulers on one engine.

The stand-in tools of the workload sleep for their drawn latency; with `--sim-speed X`
that latency is divided by X in the submitted spec, so tools keep pace with the engine.
Latencies are wall seconds; at X = 1 they are simulated seconds too. The engine streams a
chunk per `--stream-interval` tokens (default: only each answer's first and last token,
as `benchmarks/sim_speed.py` does; 1 is a chunk per token, as vLLM streams by default,
and costs the server a wake-up per token; plas then demotes a call as it streams rather
than when it ends). The same programs and arrivals are
also run in this process on virtual time (`virtual_time_reference`): the latency the
engine and scheduler alone give, without HTTP, the store, or a server that falls behind.

    nice .venv/bin/python benchmarks/serve_load.py --runs 1000 --clients 16 \\
        -o results/serve/load.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from taskloom.bench.runner import (
    BenchConfig,
    SimEngines,
    SimSetup,
    run_on_virtual_time,
    run_point,
)
from taskloom.bench.workloads import BenchProgram, Workload, build_workload, poisson_arrivals
from taskloom.client import Client, ServerError
from taskloom.orchestrator.store import RunStore

ROOT = Path(__file__).resolve().parent.parent
TOOLS_MODULE = "serve_load_tools"
TOOLS_SOURCE = '''"""The mixed workload's stand-in tools, for `serve --tools serve_load_tools`."""

from taskloom.bench.workloads.sim_tools import lats_select_tool, simulated_call_tool

simulated_call = simulated_call_tool()
lats_select = lats_select_tool()
'''
FINAL = ("succeeded", "failed", "cancelled")
SCHEDULERS_NOTE = (
    "The server keeps one scheduler per policy, shared by every run of that policy, all "
    "over one engine. mode 'rounds': one server per policy (started with --policy P), the "
    "same programs at the same arrival times, so every run of a round went through one "
    "scheduler. mode 'shared': both policies' runs on one server at once, through two "
    "schedulers (one per policy) on one engine."
)
START_TIMEOUT_S = 120.0
FIRST_AND_LAST = 1 << 30
"""A stream interval longer than any answer: a chunk for the first token and the last."""


@dataclass(frozen=True)
class Job:
    index: int
    kind: str
    spec: str
    inputs: dict[str, Any]
    policy: str
    llm_calls: int
    at_s: float  # wall seconds from the round's start


@dataclass
class Submitted:
    job: Job
    run_id: str | None
    latency_s: float
    late_s: float
    error: str | None = None


@dataclass
class LoadServer:
    workdir: Path
    name: str
    policy: str  # the server's default; each run also names its own
    sim_speed: float
    stream_interval: int
    api_keys: Sequence[str]
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    store: Path = field(init=False)

    def __post_init__(self) -> None:
        self.store = self.workdir / f"store-{self.name}.db"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.port = free_port()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(self.workdir)])
        env.pop("TASKLOOM_API_KEYS", None)
        keys = [arg for key in self.api_keys for arg in ("--api-key", key)]
        log = (self.workdir / f"server-{self.name}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "taskloom", "serve", "--backend", "sim",
             "--sim-speed", str(self.sim_speed), "--sim-stream-interval",
             str(self.stream_interval), "--policy", self.policy,
             "--port", str(self.port), "--store", str(self.store), "--tools", TOOLS_MODULE,
             "--max-runs-in-flight", "1000000", *keys],
            cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("the server exited: " + Path(log.name).read_text()[-2000:])
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not start in {START_TIMEOUT_S:.0f} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def peak_rss_mib(self) -> float:
        """VmHWM: the most resident memory the server process ever had."""
        return _proc_status_kib(self._pid(), "VmHWM") / 1024

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self._pid()}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def _pid(self) -> int:
        assert self.process is not None
        return self.process.pid


def _proc_status_kib(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{key}:"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/{pid}/status")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def spec_text(bench_program: BenchProgram, sim_speed: float) -> str:
    """The program as spec text (JSON is YAML), tool latencies divided by the speed."""
    spec = bench_program.program.model_dump(mode="json", exclude_none=True)
    for node in spec["nodes"].values():
        args = node.get("args") if node.get("kind") == "tool" else None
        if node.get("tool") == "simulated_call" and isinstance(args, dict):
            latency = args.get("latency_s")
            if isinstance(latency, int | float):
                args["latency_s"] = latency / sim_speed
    return json.dumps(spec)


def make_jobs(programs: Sequence[BenchProgram], arrivals: Sequence[float], policies: Sequence[str],
              sim_speed: float) -> list[Job]:
    """Job i runs program i at its arrival, with policy `policies[i % len(policies)]`."""
    return [
        Job(index=i, kind=p.kind, spec=spec_text(p, sim_speed), inputs=dict(p.inputs),
            policy=policies[i % len(policies)], llm_calls=p.llm_calls, at_s=at / sim_speed)
        for i, (p, at) in enumerate(zip(programs, arrivals, strict=True))
    ]


def submit_all(url: str, keys: Sequence[str], jobs: Sequence[Job]) -> list[Submitted]:
    """Client c (its own thread and key) submits jobs c, c + clients, ... at their times."""
    done: list[Submitted | None] = [None] * len(jobs)
    start = time.perf_counter() + 0.5

    def client(number: int) -> None:
        with Client(url, api_key=keys[number], timeout=120) as http:
            for job in jobs[number::len(keys)]:
                delay = start + job.at_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                began = time.perf_counter()
                run_id, error = None, None
                try:
                    run_id = http.submit(job.spec, inputs=job.inputs, policy=job.policy)
                except (ServerError, httpx.HTTPError) as exc:
                    error = f"{type(exc).__name__}: {exc}"
                ended = time.perf_counter()
                done[job.index] = Submitted(job, run_id, ended - began,
                                            began - (start + job.at_s), error)

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(len(keys))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return [s for s in done if s is not None]


def metric_values(text: str, name: str) -> dict[str, float]:
    """`label text -> value` for every sample of `name` in a Prometheus scrape."""
    found: dict[str, float] = {}
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found[match.group(1) or ""] = float(match.group(2))
    return found


def wait_until_idle(server: LoadServer, timeout_s: float) -> dict[str, Any]:
    """Poll /metrics until no run is running; /healthz round trips meanwhile."""
    health: list[float] = []
    peak_calls = 0.0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        began = time.perf_counter()
        httpx.get(f"{server.url}/healthz", timeout=30)
        health.append(time.perf_counter() - began)
        scrape = httpx.get(f"{server.url}/metrics", timeout=30).text
        peak_calls = max(peak_calls, *metric_values(scrape, "taskloom_llm_calls_in_flight")
                         .values(), 0.0)
        if metric_values(scrape, "taskloom_runs").get('{status="running"}', 1) == 0:
            return {"timed_out": False, "healthz_s": summary(health),
                    "peak_llm_calls_in_flight": peak_calls, "metrics": scrape}
        time.sleep(1.0)
    return {"timed_out": True, "healthz_s": summary(health),
            "peak_llm_calls_in_flight": peak_calls,
            "metrics": httpx.get(f"{server.url}/metrics", timeout=30).text}


def summary(values: Sequence[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    data = np.asarray(values, dtype=float)
    return {"n": len(values), "mean": round(float(data.mean()), 4),
            "p50": round(float(np.percentile(data, 50)), 4),
            "p95": round(float(np.percentile(data, 95)), 4),
            "p99": round(float(np.percentile(data, 99)), 4),
            "max": round(float(data.max()), 4)}


def run_round(name: str, jobs: Sequence[Job], args: argparse.Namespace,
              workdir: Path) -> dict[str, Any]:
    keys = [f"load-client-{n}" for n in range(args.clients)]
    server = LoadServer(workdir, name, jobs[0].policy, args.sim_speed, args.stream_interval,
                        keys)
    server.start()
    began = time.perf_counter()
    try:
        submitted = submit_all(server.url, keys, jobs)
        submit_wall_s = time.perf_counter() - began
        idle = wait_until_idle(server, args.timeout)
        wall_s = time.perf_counter() - began
        peak_rss, cpu_s = server.peak_rss_mib(), server.cpu_s()
    finally:
        server.stop()
    rows = stored_rows(server.store, [s.run_id for s in submitted if s.run_id])
    return round_figures(name, submitted, rows, idle, {
        "wall_s": round(wall_s, 1), "submit_wall_s": round(submit_wall_s, 1),
        "server_peak_rss_mib": round(peak_rss, 1), "server_cpu_s": round(cpu_s, 1)})


def stored_rows(store_path: Path, run_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    store = RunStore(store_path)
    try:
        rows: dict[str, dict[str, Any]] = {}
        for run_id in run_ids:
            row = store.get(run_id)
            if row is not None:
                rows[run_id] = {"status": row.status.value, "policy": row.policy,
                                "created_at": row.created_at, "finished_at": row.finished_at}
        return rows
    finally:
        store.close()


def round_figures(name: str, submitted: Sequence[Submitted], rows: dict[str, dict[str, Any]],
                  idle: dict[str, Any], measured: dict[str, float]) -> dict[str, Any]:
    statuses: dict[str, int] = {}
    latency: dict[str, list[float]] = {}
    by_kind: dict[str, dict[str, list[float]]] = {}
    finished = 0
    for each in submitted:
        row = rows.get(each.run_id or "")
        status = row["status"] if row else "missing"
        statuses[status] = statuses.get(status, 0) + 1
        if row is None or status not in FINAL or row["finished_at"] is None:
            continue
        finished += 1
        seconds = row["finished_at"] - row["created_at"]
        latency.setdefault(row["policy"], []).append(seconds)
        by_kind.setdefault(row["policy"], {}).setdefault(each.job.kind, []).append(seconds)
    errors = [s.error for s in submitted if s.error]
    scrape = idle.pop("metrics")
    calls_finished = metric_values(scrape, "taskloom_scheduler_calls_finished_total")
    return {
        "round": name,
        "runs": len(submitted),
        "accepted": sum(1 for s in submitted if s.run_id),
        "submit_errors": len(errors),
        "submit_error_examples": errors[:5],
        "lost": len(submitted) - finished,
        "final_status": statuses,
        "timed_out": idle["timed_out"],
        **measured,
        "submit_latency_s": summary([s.latency_s for s in submitted]),
        "submit_late_s": summary([max(0.0, s.late_s) for s in submitted]),
        "healthz_latency_s": idle["healthz_s"],
        "peak_llm_calls_in_flight_after_submitting": idle["peak_llm_calls_in_flight"],
        "llm_calls_in_programs": sum(s.job.llm_calls for s in submitted),
        "scheduler_calls_finished": {_label(k): v for k, v in calls_finished.items()},
        "program_latency_s": {p: summary(v) for p, v in sorted(latency.items())},
        "program_latency_by_kind_s": {
            p: {kind: summary(v) for kind, v in sorted(kinds.items())}
            for p, kinds in sorted(by_kind.items())},
        "latencies_s": {p: [round(x, 3) for x in v] for p, v in sorted(latency.items())},
        "submit_latencies_s": [round(s.latency_s, 5) for s in submitted],
    }


def _label(labels: str) -> str:
    found = re.search(r'policy="([^"]*)"', labels)
    return found.group(1) if found else labels


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib  # only for the figure; the JSON needs none of it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for one in figures["rounds"]:
        for policy, values in one["latencies_s"].items():
            data = np.sort(values)
            label = policy if figures["mode"] == "rounds" else f"{policy} (shared server)"
            left.plot(data, np.arange(1, len(data) + 1) / len(data), label=label)
        submit = np.sort(one["submit_latencies_s"])
        right.plot(submit * 1000, np.arange(1, len(submit) + 1) / len(submit),
                   label=f"round {one['round']}")
    left.set(xlabel="program latency (s, wall)", ylabel="fraction of runs",
             title=f"{figures['runs']} mixed programs, sim x{figures['sim_speed']:g}")
    left.legend()
    right.set(xlabel="POST /v1/runs latency (ms)", ylabel="fraction of submissions",
              title=f"{figures['clients']} concurrent clients", xscale="log")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_test(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    policies = [p.strip() for p in args.policies.split(",") if p.strip()]
    (workdir / f"{TOOLS_MODULE}.py").write_text(TOOLS_SOURCE)
    built = time.perf_counter()
    workload = build_workload("mixed", args.runs, args.seed)
    arrivals = poisson_arrivals(args.rate, args.runs, args.seed)
    build_s = time.perf_counter() - built
    rounds: list[dict[str, Any]] = []
    if args.mode == "rounds":
        for policy in policies:
            jobs = make_jobs(workload.programs, arrivals, [policy], args.sim_speed)
            rounds.append(run_round(policy, jobs, args, workdir))
            print(_round_line(rounds[-1]), flush=True)
    else:
        jobs = make_jobs(workload.programs, arrivals, policies, args.sim_speed)
        rounds.append(run_round("shared", jobs, args, workdir))
        print(_round_line(rounds[-1]), flush=True)
    reference = {} if args.no_reference else {
        policy: virtual_reference(args, workload, policy) for policy in policies}
    by_policy: dict[str, Any] = {}
    for one in rounds:
        by_policy.update(one["program_latency_s"])
    submits = [x for one in rounds for x in one["submit_latencies_s"]]
    return {
        "benchmark": "serve_load",
        "command": " ".join(["benchmarks/serve_load.py", *sys.argv[1:]]),
        "workload": "mixed",
        "runs": args.runs,
        "clients": args.clients,
        "sim_speed": args.sim_speed,
        "rate_programs_per_sim_s": args.rate,
        "seed": args.seed,
        "mode": args.mode,
        "policies": policies,
        "schedulers": SCHEDULERS_NOTE,
        "workload_llm_calls": workload.llm_calls,
        "workload_build_s": round(build_s, 1),
        "lost": sum(one["lost"] for one in rounds),
        "submit_latency_s": summary(submits),
        "server_peak_rss_mib": max(one["server_peak_rss_mib"] for one in rounds),
        "program_latency_s": by_policy,
        "virtual_time_reference": reference,
        "rounds": rounds,
    }


def virtual_reference(args: argparse.Namespace, workload: Workload,
                      policy: str) -> dict[str, Any]:
    """The same programs and arrivals through the same runtime, scheduler and simulated
    H100 in this process on virtual time: no server, no HTTP, no store, no lag."""
    config = BenchConfig(workload="mixed", policies=(policy,), rates=(args.rate,),
                         programs=args.runs, seed=args.seed,
                         sim=SimSetup(stream_interval=args.stream_interval))
    began = time.perf_counter()
    point = run_on_virtual_time(run_point, config, workload, policy, args.rate,
                                SimEngines(config.sim), lambda outcome: None)
    row = point.row
    print(f"virtual-time reference, {policy}: mean {row.mean_latency_s:.2f} s "
          f"({time.perf_counter() - began:.0f} s wall)", flush=True)
    return {"programs": row.programs, "failed": row.failed_programs,
            "mean": row.mean_latency_s, "p50": row.p50_latency_s, "p95": row.p95_latency_s,
            "p99": row.p99_latency_s, "max": row.max_latency_s,
            "preemptions": row.preemptions, "llm_calls": row.llm_calls}


def _round_line(one: dict[str, Any]) -> str:
    latency = ", ".join(f"{p} mean {s.get('mean')} p50 {s.get('p50')} p99 {s.get('p99')} s"
                        for p, s in one["program_latency_s"].items())
    return (f"round {one['round']}: {one['runs']} runs, lost {one['lost']}, submit p50 "
            f"{one['submit_latency_s'].get('p50')} s p99 {one['submit_latency_s'].get('p99')} s, "
            f"peak RSS {one['server_peak_rss_mib']} MiB, server CPU {one['server_cpu_s']} s "
            f"in {one['wall_s']} s; {latency}")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--sim-speed", type=float, default=1.0,
                        help="the simulated engine's speed against real time")
    parser.add_argument("--rate", type=float, default=1.0,
                        help="program arrivals per simulated second (Poisson)")
    parser.add_argument("--stream-interval", type=int, default=FIRST_AND_LAST,
                        help="tokens per streamed chunk of the simulated engine (default: "
                        "only each answer's first and last token)")
    parser.add_argument("--policies", default="fcfs,plas")
    parser.add_argument("--no-reference", action="store_true",
                        help="skip the same programs on virtual time, without the server")
    parser.add_argument("--mode", choices=("rounds", "shared"), default="rounds",
                        help="rounds: one server per policy; shared: all on one server")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=3600.0,
                        help="seconds to wait for the runs after the last submission")
    parser.add_argument("--png", type=Path, default=None,
                        help="the figure (default: beside -o, .png)")
    parser.add_argument("-o", "--output", type=Path, default=Path("results/serve/load.json"))
    args = parser.parse_args(argv)
    if args.runs < 1 or args.clients < 1 or args.sim_speed <= 0 or args.rate <= 0:
        parser.error("--runs, --clients, --sim-speed and --rate must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="serve-load-") as folder:
        figures = load_test(args, Path(folder))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    png = args.png or args.output.with_suffix(".png")
    plot(figures, png)
    args.output.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"lost {figures['lost']}; submit p50 {figures['submit_latency_s'].get('p50')} s, "
          f"p99 {figures['submit_latency_s'].get('p99')} s; server peak RSS "
          f"{figures['server_peak_rss_mib']} MiB; wrote {args.output} and {png}")
    return 1 if figures["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
