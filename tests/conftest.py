"""Shared fixtures: one real vLLM engine for the whole test session.

How the engine meets anyio's pytest plugin:

- The plugin runs every async test and fixture on one shared "runner" (an event loop)
  for as long as anything holds a lease on it. The `engine` fixture holds an asyncio
  lease for the rest of the session, so the engine's background tasks live on the same
  loop as every engine test.
- While that lease is held, a test asking for trio would be handed the asyncio runner.
  So tests that use `engine` are moved to the end of the run, after every trio test,
  and an engine test parametrized with trio is skipped with a reason.
- The plugin's `anyio_backend` stays as it is (per module, asyncio and trio), so other
  modules keep running once per backend. An engine test module may pin
  `anyio_backend` to "asyncio" to avoid the skipped trio copies.

Tests that use `engine` get the `engine` marker automatically; `-m "not engine"` runs
everything else without starting vLLM.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from anyio.pytest_plugin import get_runner
from vllm_replicas import VLLMReplica

from taskloom.backends.embedded import ensure_embedded_model
from taskloom.backends.vllm_engine import VLLMBackend

ENGINE_FIXTURE = "engine"

# Set before any test module imports huggingface_hub, which reads HF_HUB_OFFLINE once,
# at import. (Nothing imported above pulls it in.) A value the user exported wins.
for _name, _value in (("HF_HUB_OFFLINE", "1"), ("VLLM_CPU_NUM_OF_RESERVED_CPU", "0"),
                      ("VLLM_CPU_KVCACHE_SPACE", "1")):
    os.environ.setdefault(_name, _value)


def pytest_itemcollected(item: pytest.Item) -> None:
    # Marked here, before `-m` selection looks at markers.
    if ENGINE_FIXTURE in _fixture_names(item):
        item.add_marker(pytest.mark.engine)
        if _anyio_backend_param(item) not in (None, "asyncio"):
            item.add_marker(pytest.mark.skip(reason="the vLLM engine runs on asyncio only"))


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    uses_engine = [item for item in items if ENGINE_FIXTURE in _fixture_names(item)]
    others = [item for item in items if ENGINE_FIXTURE not in _fixture_names(item)]
    ordered = others + uses_engine
    # A test that kills its session's engine must come after every test that needs it.
    killers = [item for item in ordered if item.get_closest_marker("kills_engine")]
    items[:] = [item for item in ordered if item not in killers] + killers


def _fixture_names(item: pytest.Item) -> list[str]:
    return list(getattr(item, "fixturenames", ()))


def _anyio_backend_param(item: pytest.Item) -> object:
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("anyio_backend") if callspec else None
    return backend[0] if isinstance(backend, tuple) else backend


@pytest.fixture(scope="session")
def engine() -> Iterator[VLLMBackend]:
    """The embedded model on vLLM, started once (about 30 s on 2 CPU cores)."""
    with get_runner("asyncio", {}) as runner:
        if "asyncio" not in type(runner).__module__:
            pytest.fail("the engine fixture needs the asyncio runner, but a trio one is live")
        model = ensure_embedded_model()
        started = time.monotonic()
        for backend in runner.run_asyncgen_fixture(_open_engine, {"model": str(model)}):
            print(f"\n[taskloom] vLLM engine started in {time.monotonic() - started:.1f} s")
            yield backend


async def _open_engine(model: str) -> AsyncGenerator[VLLMBackend, None]:
    # float32, not the model's own bfloat16: in bfloat16 vLLM's CPU build gives greedy
    # answers that change with the batch a call shares (5 of 8 short chat answers did), so
    # tests that compare a preempted or batched answer with a lone one need float32.
    async with VLLMBackend(model, max_num_seqs=16, max_model_len=2048,
                           dtype="float32") as backend:
        yield backend


# --- a real OpenAI-compatible vLLM server (the `openai_server` session's one engine) ---

SERVER_START_TIMEOUT_S = 300


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_for_health(
    base_url: str, server: subprocess.Popen[bytes], log: Path,
    timeout_s: float = SERVER_START_TIMEOUT_S,
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"vLLM server exited ({server.returncode}):\n{_tail(log)}")
        try:
            if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    pytest.fail(f"vLLM server not healthy after {timeout_s:g} s:\n{_tail(log)}")


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


@pytest.fixture(scope="session")
def vllm_server(vllm_server_process: tuple[str, subprocess.Popen[bytes]]) -> str:
    """The base URL of the session's server."""
    return vllm_server_process[0]


@pytest.fixture(scope="session")
def vllm_server_process(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`python -m vllm.entrypoints.openai.api_server` on the embedded model."""
    from taskloom.backends.embedded import ensure_embedded_model

    model, port = ensure_embedded_model(), _free_port()
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    env = {"VLLM_CPU_NUM_OF_RESERVED_CPU": "0", "VLLM_CPU_KVCACHE_SPACE": "1",
           "HF_HUB_OFFLINE": "1", **os.environ}
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
               "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--enforce-eager", "--max-model-len", "2048", "--max-num-seqs", "16",
               "--scheduling-policy", "priority"]
    with log.open("wb") as sink:
        # Its own process group, so that a test can kill the server with its engine
        # process, as a crash would.
        server = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env,
                                  start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_for_health(base_url, server, log)
        yield base_url, server
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- killable replicas for the several-engines tests (tests/test_cli_engines_server.py) ---

REPLICA_START_TIMEOUT_S = 900  # two replicas start together on 2 shared cores


@pytest.fixture(scope="session")
def start_replicas(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[int], list[VLLMReplica]]]:
    """start_replicas(n) -> n new servers, started together; all are stopped at the end
    of the session. Each server's OpenMP threads are bound to one core of its own."""
    started: list[VLLMReplica] = []

    def start(count: int) -> list[VLLMReplica]:
        model = ensure_embedded_model()
        fresh = []
        for _ in range(count):
            port, core = _free_port(), len(started) % (os.cpu_count() or 1)
            log = tmp_path_factory.mktemp("vllm-replica") / "server.log"
            env = {**os.environ, "VLLM_CPU_NUM_OF_RESERVED_CPU": "0",
                   "VLLM_CPU_KVCACHE_SPACE": "1", "HF_HUB_OFFLINE": "1",
                   "VLLM_CPU_OMP_THREADS_BIND": str(core)}
            command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server",
                       "--model", str(model), "--host", "127.0.0.1", "--port", str(port),
                       "--dtype", "float32", "--enforce-eager", "--max-model-len", "2048",
                       "--max-num-seqs", "16"]
            with log.open("wb") as sink:
                process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT,
                                           env=env, start_new_session=True)
            replica = VLLMReplica(process, f"http://127.0.0.1:{port}", log)
            started.append(replica)
            fresh.append(replica)
        for replica in fresh:
            _wait_for_health(replica.base_url, replica.process, replica.log,
                             REPLICA_START_TIMEOUT_S)
        return fresh

    yield start
    for replica in started:
        if replica.process.poll() is None:
            replica.process.terminate()
            try:
                replica.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                replica.kill()
