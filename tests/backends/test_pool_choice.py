"""Which pool a runtime or server opens, and the settings that do not mix (refused
before anything starts, so no Ray and no engine is needed here)."""

from __future__ import annotations

import pytest

from taskloom.backends.factory import BackendSettingsError
from taskloom.backends.pool_choice import RaySettings, open_pool
from taskloom.runtime import Runtime


def test_ray_settings_from_the_runtimes_arguments() -> None:
    assert RaySettings.of(None, None) is None
    assert RaySettings.of(False, None) is None
    assert RaySettings.of(True, None) == RaySettings(replicas=1, address=None)
    assert RaySettings.of("ray://head:10001", 2) == RaySettings(2, "ray://head:10001")


@pytest.mark.parametrize(("ray", "replicas", "message"), [
    (None, 2, "replicas are Ray actors: give ray="),
    (True, 0, "replicas must be at least 1"),
    (True, -3, "replicas must be at least 1"),
])
def test_replicas_without_ray_or_below_one_are_refused(
        ray: bool | None, replicas: int, message: str) -> None:
    with pytest.raises(BackendSettingsError, match=message):
        RaySettings.of(ray, replicas)


def test_one_engine_opens_no_pool() -> None:
    assert open_pool("vllm", model=None, base_url=None, engines=None, ray=None) is None


@pytest.mark.parametrize(("backend", "base_url", "engines", "message"), [
    ("openai", None, ["http://a:8000"], "do not mix"),
    ("openai", None, None, "an OpenAI server is not a replica"),
    ("vllm", "http://a:8000", None, "an OpenAI server is not a replica"),
    ("nonesuch", None, None, "unknown backend"),
])
def test_ray_refuses_what_cannot_be_a_replica(
        backend: str, base_url: str | None, engines: list[str] | None, message: str) -> None:
    with pytest.raises(BackendSettingsError, match=message):
        open_pool(backend, model=None, base_url=base_url, engines=engines,
                  ray=RaySettings(2))


@pytest.mark.anyio
async def test_runtime_open_refuses_ray_with_engine_urls_before_anything_starts() -> None:
    with pytest.raises(BackendSettingsError, match="do not mix"):
        async with Runtime.open("openai", engines=["http://a:8000"], ray=True, replicas=2):
            pass
