"""open_backend and the one backend lifecycle: open once, close (idempotent, shielded),
refuse use after close, release what a cancelled open acquired."""

from __future__ import annotations

from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from taskloom.backends import vllm_engine
from taskloom.backends.base import Backend, GenerateRequest, SamplingParams, collect
from taskloom.backends.factory import (
    BackendName,
    BackendSettingsError,
    backend_name,
    open_backend,
)
from taskloom.backends.lifecycle import BackendState, ManagedBackend
from taskloom.backends.openai_http import OpenAIBackend
from taskloom.backends.scripted import ScriptedBackend
from taskloom.backends.sim import SimBackend, SimEngineConfig
from taskloom.backends.vllm_engine import VLLMBackend
from taskloom.errors import BackendError

pytestmark = pytest.mark.anyio

BASE = "http://engine.test"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _request(call_id: str = "c1") -> GenerateRequest:
    # Three tokens: the simulated engine runs on the real clock here, a few ms a step.
    return GenerateRequest(call_id=call_id, prompt="one two three",
                           sampling=SamplingParams(max_tokens=3))


def _models(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"data": [{"id": "m1"}, {"id": "m2"}]})


class _FakeAsyncLLM:
    """Stands in for vLLM's AsyncLLM: one real engine per test session is the limit."""

    def __init__(self) -> None:
        self.shutdowns = 0

    def shutdown(self) -> None:
        self.shutdowns += 1


Started = tuple[str, dict[str, Any], _FakeAsyncLLM]


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Started]:
    """Replaces starting vLLM and converting the embedded model; records each start."""
    started: list[Started] = []

    def start_engine(model: str, engine_args: dict[str, Any]) -> _FakeAsyncLLM:
        engine = _FakeAsyncLLM()
        started.append((model, engine_args, engine))
        return engine

    monkeypatch.setattr(vllm_engine, "start_engine", start_engine)
    monkeypatch.setattr(vllm_engine, "ensure_embedded_model", lambda: tmp_path / "embedded")
    return started


# --- every name opens and closes -------------------------------------------------------


async def test_scripted_opens_by_name_and_closes() -> None:
    async with open_backend("scripted", respond=lambda r: "from factory") as backend:
        assert isinstance(backend, ScriptedBackend) and backend.state is BackendState.OPEN
        assert (await collect(backend.generate(_request()))).text == "from factory"
    assert backend.closed


async def test_sim_opens_by_name_and_closes() -> None:
    config = SimEngineConfig(max_num_seqs=3)
    async with open_backend(BackendName.SIM, config=config) as backend:
        assert isinstance(backend, SimBackend) and backend.capacity() == 3
        answer = await collect(backend.generate(_request()))
        assert answer.finish_reason == "length" and answer.generated_tokens == 3
    assert backend.closed
    with pytest.raises(BackendError, match="closed"):
        await collect(backend.generate(_request("late")))


async def test_openai_opens_by_name_and_discovers_its_model() -> None:
    backend = open_backend("openai", base_url=BASE, transport=httpx.MockTransport(_models))
    assert isinstance(backend, OpenAIBackend) and backend.state is BackendState.NEW
    async with backend:
        assert backend.model == "m1" and isinstance(backend, Backend)
    assert backend.closed and backend._client.is_closed


async def test_vllm_opens_the_embedded_model_and_shuts_it_down(
    fake_vllm: list[Started], tmp_path: Path
) -> None:
    backend = open_backend("vllm", max_num_seqs=4)
    assert isinstance(backend, VLLMBackend) and not fake_vllm  # nothing starts before open
    async with backend:
        assert backend.model == str(tmp_path / "embedded") and backend.capacity() == 4
    model, engine_args, engine = fake_vllm[0]
    assert model == str(tmp_path / "embedded") and engine_args["max_num_seqs"] == 4
    assert engine.shutdowns == 1 and backend.closed
    async with open_backend("vllm", model="/models/other"):
        pass
    assert fake_vllm[1][0] == "/models/other"


async def test_the_backend_classes_open_as_async_with_too() -> None:
    async with ScriptedBackend(max_in_flight=2) as scripted, SimBackend() as sim:
        assert scripted.capacity() == 2 and sim.state is BackendState.OPEN
    assert scripted.closed and sim.closed


def test_every_name_is_a_backend_name() -> None:
    assert [name.value for name in BackendName] == ["vllm", "openai", "sim", "scripted"]
    assert backend_name("sim") is BackendName.SIM


# --- settings refused before anything starts -----------------------------------------


def test_an_unknown_name_suggests_the_closest_and_lists_all() -> None:
    with pytest.raises(BackendSettingsError) as caught:
        open_backend("vlm")
    assert str(caught.value) == (
        "unknown backend 'vlm' (did you mean 'vllm'?); choose from openai, scripted, sim, vllm"
    )
    assert isinstance(caught.value, ValueError)


def test_openai_without_a_base_url_is_refused() -> None:
    with pytest.raises(BackendSettingsError, match="needs a server URL"):
        open_backend("openai", model="m")


def test_a_base_url_for_another_backend_is_refused() -> None:
    with pytest.raises(BackendSettingsError, match="openai backend only"):
        open_backend("sim", base_url=BASE)


# --- the lifecycle ----------------------------------------------------------------------


async def test_closing_twice_is_harmless() -> None:
    async with open_backend("sim") as backend:
        await backend.close()  # as a scheduler closing its engines does
        await backend.close()
    await backend.close()
    assert backend.closed


async def test_use_after_close_is_a_backend_error() -> None:
    backend = open_backend("openai", base_url=BASE, model="m",
                           transport=httpx.MockTransport(_models))
    async with backend:
        pass
    with pytest.raises(BackendError, match="openai backend is closed"):
        await collect(backend.generate(_request()))
    with pytest.raises(BackendError, match="closed"):
        await backend.served_models()


async def test_opening_twice_is_a_backend_error() -> None:
    async with open_backend("scripted") as backend:
        with pytest.raises(BackendError, match="already open"):
            async with backend:
                pass
        assert backend.state is BackendState.OPEN  # the failed reopen closed nothing
    with pytest.raises(BackendError, match="cannot open again"):
        async with backend:
            pass


async def test_an_engine_that_needs_opening_refuses_requests_before() -> None:
    with pytest.raises(BackendError, match="not open yet"):
        await collect(open_backend("sim").generate(_request()))


async def test_the_scripted_double_serves_as_a_plain_object_until_closed() -> None:
    backend = ScriptedBackend(respond=lambda r: "plain")
    assert (await collect(backend.generate(_request()))).text == "plain"
    await backend.close()
    with pytest.raises(BackendError, match="closed"):
        await collect(backend.generate(_request()))


class _Recorder(ManagedBackend):
    """Acquires a resource on open, then waits on `gate` before finishing the open."""

    name = "recorder"

    def __init__(self) -> None:
        self.acquired = False
        self.released = 0
        self.gate = anyio.Event()

    def capacity(self) -> int:
        return 1

    async def generate(self, request: GenerateRequest) -> Any:  # never called here
        raise NotImplementedError
        yield

    async def _open(self, context: AsyncExitStack) -> None:
        self.acquired = True
        await self.gate.wait()

    async def _release(self) -> None:
        await anyio.sleep(0)  # a checkpoint: it must run although the caller is cancelled
        self.released += 1


async def test_cancelled_during_open_releases_what_was_acquired() -> None:
    backend = _Recorder()
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(backend.__aenter__)
            await anyio.wait_all_tasks_blocked()
            assert backend.acquired and backend.state is BackendState.OPENING
            scope.cancel()
    assert backend.released == 1 and backend.closed


async def test_closed_while_opening_fails_the_open_and_releases() -> None:
    backend = _Recorder()

    async def close_midway() -> None:
        await anyio.wait_all_tasks_blocked()
        await backend.close()
        backend.gate.set()

    async with anyio.create_task_group() as group:
        group.start_soon(close_midway)
        with pytest.raises(BackendError, match="closed while it was opening"):
            await backend.__aenter__()
    assert backend.released == 2 and backend.closed  # once by close, once after the open


async def test_cancelled_openai_discovery_closes_the_client() -> None:
    async def hang(request: httpx.Request) -> httpx.Response:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    backend = open_backend("openai", base_url=BASE, transport=httpx.MockTransport(hang))
    assert isinstance(backend, OpenAIBackend)
    with anyio.CancelScope() as scope:
        async with anyio.create_task_group() as group:
            group.start_soon(backend.__aenter__)
            await anyio.wait_all_tasks_blocked()
            scope.cancel()
    assert backend.closed and backend._client.is_closed


async def test_closing_is_shielded_from_the_callers_cancellation() -> None:
    backend = _Recorder()
    backend.gate.set()
    with anyio.CancelScope() as scope:
        async with backend:
            scope.cancel()
            await anyio.sleep(0)  # the cancellation lands here, inside the block
    assert backend.released == 1 and backend.closed
