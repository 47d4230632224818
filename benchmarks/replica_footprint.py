"""What one engine replica of the several-engines setup costs: a `vllm serve` of the
embedded model in float32 with its OpenMP threads bound to one core, as the tests start
it (tests/conftest.py `start_replicas`). Prints the memory of the API server and its
engine process (RSS, and PSS, which splits shared pages fairly between processes) after
start and after 8 parallel requests, and the CPU seconds each process used for them.

    python benchmarks/replica_footprint.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import psutil

from taskloom.backends.embedded import ensure_embedded_model


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _processes(root: psutil.Process) -> list[psutil.Process]:
    return [root, *root.children(recursive=True)]


def _memory(root: psutil.Process) -> str:
    rows = []
    for process in _processes(root):
        info = process.memory_full_info()
        rows.append(f"{process.name()[:20]}: RSS {info.rss / 2**20:.0f} MiB, "
                    f"PSS {info.pss / 2**20:.0f} MiB")
    return "; ".join(rows)


def main() -> None:
    port = _free_port()
    env = {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
           "HF_HUB_OFFLINE": "1", "VLLM_CPU_OMP_THREADS_BIND": "0"}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(ensure_embedded_model()), "--port", str(port),
               "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
               "--max-num-seqs", "16"]
    started = time.monotonic()
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        root = psutil.Process(server.pid)
        print(f"healthy after {time.monotonic() - started:.0f} s")
        print("after start:", _memory(root))
        before = {p.pid: sum(p.cpu_times()[:2]) for p in _processes(root)}
        model = httpx.get(f"{url}/v1/models").json()["data"][0]["id"]
        body = {"model": model, "max_tokens": 64, "temperature": 0,
                "messages": [{"role": "user", "content": "Write about rivers."}]}
        begun = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: httpx.post(f"{url}/v1/chat/completions", json=body,
                                               timeout=600), range(8)))
        wall = time.monotonic() - begun
        cpu = {p.name()[:20]: sum(p.cpu_times()[:2]) - before.get(p.pid, 0.0)
               for p in _processes(root)}
        print("after 8 requests:", _memory(root))
        print(f"8 requests of 64 tokens: {wall:.1f} s wall; CPU s by process: "
              + ", ".join(f"{name} {seconds:.1f}" for name, seconds in cpu.items()))
    finally:
        os.killpg(server.pid, 9)


if __name__ == "__main__":
    main()
