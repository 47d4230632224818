"""What each engine replica on Ray costs: two embedded replicas as Ray actors
(`open_ray_replicas`, float32, `max_num_seqs` 16, 1 GiB of KV cache), on a local Ray this
script starts. Prints, and writes as JSON, the memory of each replica's processes (the
actor, which holds the engine's front end, and the engine core it starts), RSS and PSS
(PSS splits shared pages fairly between processes), after start and after 8 parallel
requests (4 per replica); the CPU seconds each process used for them; and what Ray's own
processes (GCS, raylet, idle workers) take besides.

    python benchmarks/ray_replica_footprint.py [--out results/ray_replica_footprint.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import anyio
import psutil

from taskloom.backends.base import GenerateRequest, Message, SamplingParams, collect
from taskloom.backends.engine_pool import EnginePool
from taskloom.backends.ray_replicas import RayReplicaBackend, open_ray_replicas, require_ray

REPLICAS = 2
REQUESTS = 8
MAX_TOKENS = 64
GIB = 2**30


def tree(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def memory(processes: Iterable[psutil.Process]) -> list[dict[str, Any]]:
    rows = []
    for process in processes:
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue  # an idle Ray worker that ended meanwhile
        rows.append({"pid": process.pid, "name": process.name(),
                     "rss_gib": info.rss / GIB, "pss_gib": info.pss / GIB})
    return rows


def cpu_seconds(processes: Iterable[psutil.Process]) -> dict[tuple[int, str], float]:
    return {(p.pid, p.name()): sum(p.cpu_times()[:2]) for p in processes}


def replicas_of(pool: EnginePool) -> list[RayReplicaBackend]:
    found = [engine.backend.inner for engine in pool.engines]
    assert all(isinstance(backend, RayReplicaBackend) for backend in found)
    return [backend for backend in found if isinstance(backend, RayReplicaBackend)]


async def measure() -> dict[str, Any]:
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    require_ray()
    began = time.monotonic()
    async with open_ray_replicas(REPLICAS, dtype="float32", max_num_seqs=16,
                                 progress=print) as pool:
        started_s = time.monotonic() - began
        backends = replicas_of(pool)
        roots = [psutil.Process(await b.actor.process_id.remote()) for b in backends]
        trees = [tree(root) for root in roots]
        replica_pids = {p.pid for processes in trees for p in processes}
        ray_own = [p for p in tree(psutil.Process())[1:] if p.pid not in replica_pids]
        after_start = [memory(processes) for processes in trees]
        ray_memory = memory(ray_own)
        before = cpu_seconds(p for processes in trees for p in processes)

        async def ask(index: int) -> None:
            request = GenerateRequest(
                f"r{index}", SamplingParams(max_tokens=MAX_TOKENS),
                messages=(Message("user", "Write about rivers."),))
            await collect(pool.engines[index % REPLICAS].backend.generate(request))

        asked = time.monotonic()
        async with anyio.create_task_group() as group:
            for index in range(REQUESTS):
                group.start_soon(ask, index)
        wall_s = time.monotonic() - asked
        after = cpu_seconds(p for processes in trees for p in processes)
        after_requests = [memory(processes) for processes in trees]
    return {
        "replicas": REPLICAS, "started_s": started_s,
        "cpus": os.cpu_count(), "load_average": os.getloadavg(),
        "after_start": after_start, "after_requests": after_requests,
        "requests": REQUESTS, "max_tokens": MAX_TOKENS, "requests_wall_s": wall_s,
        "cpu_s": [{"pid": pid, "name": name, "seconds": seconds - before.get((pid, name), 0.0)}
                  for (pid, name), seconds in after.items()],
        "ray_processes": ray_memory,
    }


def summary(report: dict[str, Any]) -> str:
    lines = [f"{report['replicas']} replicas ready after {report['started_s']:.0f} s "
             f"(load average {report['load_average'][0]:.1f} on {report['cpus']} cores)"]
    for stage in ("after_start", "after_requests"):
        for index, rows in enumerate(report[stage]):
            parts = ", ".join(f"{r['name'][:24]} PSS {r['pss_gib']:.2f} / RSS "
                              f"{r['rss_gib']:.2f}" for r in rows)
            total = sum(r["pss_gib"] for r in rows)
            lines.append(f"{stage} replica-{index}: PSS {total:.2f} GiB ({parts})")
    ray_pss = sum(r["pss_gib"] for r in report["ray_processes"])
    lines.append(f"Ray's own processes ({len(report['ray_processes'])}): PSS {ray_pss:.2f} GiB")
    cpu = ", ".join(f"{row['name'][:24]} ({row['pid']}) {row['seconds']:.1f}"
                    for row in report["cpu_s"])
    lines.append(f"{report['requests']} requests of {report['max_tokens']} tokens: "
                 f"{report['requests_wall_s']:.1f} s wall; CPU s by process: {cpu}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("results/ray_replica_footprint.json"))
    args = parser.parse_args()
    report = anyio.run(measure, backend="asyncio")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(summary(report))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
