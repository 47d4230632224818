"""What the server checks before it binds: no open port without a key."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from serve_harness import subprocess_env, taskloom

from taskloom.backends.pool_choice import RaySettings
from taskloom.backends.sim.profiles import H100_LLAMA3_8B_ENGINE
from taskloom.serve.config import ServeConfig, ServeConfigError, is_loopback, tenant_id


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.5.0.1"])
def test_loopback_hosts_need_no_key(host: str) -> None:
    assert is_loopback(host)
    ServeConfig(host=host).check()


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.4", "example.com"])
def test_any_other_host_needs_a_key(host: str) -> None:
    with pytest.raises(ServeConfigError, match="without an API key"):
        ServeConfig(host=host).check()
    ServeConfig(host=host, api_keys=("k",)).check()


def test_tenants_are_digests_of_keys_not_the_keys() -> None:
    tenants = ServeConfig(api_keys=("secret-a", "secret-b")).tenants()
    assert tenants["secret-a"] == tenant_id("secret-a") != tenants["secret-b"]
    assert all("secret" not in tenant for tenant in tenants.values())


def test_serve_on_a_public_host_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    started = subprocess.run(
        taskloom("serve", "--host", "0.0.0.0", "--backend", "scripted",
                 "--store", str(tmp_path / "s.db")),
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )
    assert started.returncode == 2
    assert "refusing to listen on 0.0.0.0 without an API key" in started.stderr
    assert not (tmp_path / "s.db").exists()  # it stopped before opening anything


def test_keys_from_the_environment_count(tmp_path: Path) -> None:
    started = subprocess.run(
        taskloom("serve", "--host", "0.0.0.0", "--backend", "nope"),
        capture_output=True, text=True, env=subprocess_env(TASKLOOM_API_KEYS="k1,k2"),
        timeout=60, check=False,
    )
    assert started.returncode == 2
    assert "unknown backend 'nope'" in started.stderr  # past the key check


def test_a_tools_module_that_does_not_import_refuses_to_start(tmp_path: Path) -> None:
    started = subprocess.run(
        taskloom("serve", "--backend", "scripted", "--tools", "no_such_module_here",
                 "--store", str(tmp_path / "s.db")),
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )
    assert started.returncode == 2
    assert "--tools no_such_module_here: cannot import it" in started.stderr


def test_the_sim_backend_is_the_simulated_h100_at_the_given_speed() -> None:
    options = ServeConfig(backend="sim", sim_speed=4.0, sim_stream_interval=8).backend_options()
    assert options == {"config": H100_LLAMA3_8B_ENGINE, "speed": 4.0, "stream_interval": 8}
    assert ServeConfig(backend="vllm", dtype="float32").backend_options() == {"dtype": "float32"}
    assert ServeConfig(backend="scripted").backend_options() == {}


@pytest.mark.parametrize(("config", "message"), [
    (ServeConfig(backend="sim", sim_speed=0.0), "--sim-speed must be a positive number"),
    (ServeConfig(backend="sim", sim_speed=float("nan")), "--sim-speed must be a positive"),
    (ServeConfig(backend="sim", sim_stream_interval=0), "--sim-stream-interval must be at"),
    (ServeConfig(backend="scripted", sim_speed=2.0), "for --backend sim only"),
    (ServeConfig(backend="sim", dtype="float32"), "--dtype is for --backend vllm only"),
    (ServeConfig(replicas=2), "--replicas are Ray actors: give --ray too"),
    (ServeConfig(ray_address="auto"), "--ray-address is for --ray only"),
    (ServeConfig(ray=True, replicas=0), "--replicas must be at least 1"),
    (ServeConfig(ray=True, backend="openai", engines=("http://a",)), "do not mix"),
    (ServeConfig(ray=True, backend="openai", base_url="http://a"), "not a replica"),
])
def test_engine_options_for_another_backend_or_out_of_range_are_refused(
    config: ServeConfig, message: str
) -> None:
    with pytest.raises(ServeConfigError, match=message):
        config.check()


def test_ray_settings_carry_the_address_and_the_replicas() -> None:
    assert ServeConfig().ray_settings() is None
    assert ServeConfig(ray=True).ray_settings() == RaySettings(1, None)
    assert ServeConfig(ray=True, ray_address="auto", replicas=3).ray_settings() == \
        RaySettings(3, "auto")


def test_serve_refuses_a_sim_speed_for_another_backend_before_it_starts(tmp_path: Path) -> None:
    started = subprocess.run(
        taskloom("serve", "--backend", "scripted", "--sim-speed", "3",
                 "--store", str(tmp_path / "s.db")),
        capture_output=True, text=True, env=subprocess_env(), timeout=60, check=False,
    )
    assert started.returncode == 2
    assert "--sim-speed and --sim-stream-interval are for --backend sim only" in started.stderr
