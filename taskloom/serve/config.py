"""What a server is started with, and the checks made before it binds a port."""

from __future__ import annotations

import hashlib
import ipaddress
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from taskloom.backends.pool_choice import RaySettings
from taskloom.backends.sim.profiles import H100_LLAMA3_8B_ENGINE
from taskloom.orchestrator.prices import PriceTable
from taskloom.program.budget import Budget

LOOPBACK_NAMES = ("localhost",)
API_KEYS_ENV = "TASKLOOM_API_KEYS"
# The tenant of a server started without keys (loopback only): one for everyone.
LOCAL_TENANT = "local"


class ServeConfigError(ValueError):
    """The server cannot start as configured."""


@dataclass(frozen=True)
class Limits:
    """What one request may ask for; each refusal names the limit and how to raise it."""

    max_spec_bytes: int = 256 * 1024
    max_input_bytes: int = 1024 * 1024
    max_nodes: int = 500
    max_runs_in_flight: int = 32  # per tenant

    @property
    def max_body_bytes(self) -> int:
        """A spec, inputs, and room for the JSON around them."""
        return self.max_spec_bytes + self.max_input_bytes + 64 * 1024


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"
    port: int = 8321
    backend: str = "vllm"
    model: str | None = None
    base_url: str | None = None
    engines: tuple[str, ...] = ()  # several OpenAI-compatible engines (--engine)
    # The engine as Ray actors (--ray): how many, and the cluster (None: RAY_ADDRESS, else
    # a local Ray).
    ray: bool = False
    ray_address: str | None = None
    replicas: int | None = None
    policy: str | None = None
    # The simulated engine's speed against the wall clock (sim backend only).
    sim_speed: float = 1.0
    # Tokens per streamed chunk of the simulated engine (vLLM's `stream_interval`).
    sim_stream_interval: int = 1
    # The in-process engine's dtype (vllm backend only); None: the model's own.
    dtype: str | None = None
    store: Path | None = None
    specs: Path | None = None
    api_keys: tuple[str, ...] = ()
    # `module:function` tools in specs sent over HTTP: refused unless allowed, and even
    # then imported only from the modules under `allow_import`.
    allow_import_tools: bool = False
    allow_import: tuple[str, ...] = ()
    tools_root: Path = Path(".")
    allow_hosts: tuple[str, ...] = ()
    # Python modules whose `@tool` functions the server registers (named by the operator).
    tool_modules: tuple[str, ...] = ()
    # MCP servers (`--mcp-config`) opened at start; specs call their tools as NAME.TOOL.
    # A stdio server starts in `mcp_config_dir`, the folder of the config file.
    mcp_servers: Mapping[str, Any] = field(default_factory=dict)
    mcp_config_dir: Path | None = None
    limits: Limits = field(default_factory=Limits)
    # A cap on every run (`--budget`): a run's own budget can only tighten it.
    budget: Budget | None = None
    prices: PriceTable | None = None  # `--prices`: adds each node's cost
    # OpenTelemetry spans of every run: True, False, or None for "if the OTLP endpoint
    # variable is set" (see taskloom.telemetry.setup).
    trace: bool | None = None

    def check(self) -> None:
        """Refuse to serve the network unguarded, and a `--specs` that is not a folder."""
        if not self.api_keys and not is_loopback(self.host):
            raise ServeConfigError(
                f"refusing to listen on {self.host} without an API key: anyone who can "
                "reach it could run programs on your engine. Pass --api-key KEY (or set "
                f"{API_KEYS_ENV}=KEY1,KEY2), or bind to 127.0.0.1."
            )
        if self.specs is not None and not self.specs.is_dir():
            raise ServeConfigError(f"--specs {self.specs} is not a folder")
        if not (math.isfinite(self.sim_speed) and self.sim_speed > 0):
            raise ServeConfigError(f"--sim-speed must be a positive number, got {self.sim_speed}")
        if self.sim_stream_interval < 1:
            raise ServeConfigError("--sim-stream-interval must be at least 1")
        if (self.sim_speed, self.sim_stream_interval) != (1.0, 1) and self.backend != "sim":
            raise ServeConfigError("--sim-speed and --sim-stream-interval are for "
                                   "--backend sim only")
        if self.dtype is not None and self.backend != "vllm":
            raise ServeConfigError("--dtype is for --backend vllm only")
        if self.ray_address is not None and not self.ray:
            raise ServeConfigError("--ray-address is for --ray only")
        if self.replicas is not None and not self.ray:
            raise ServeConfigError("--replicas are Ray actors: give --ray too")
        if self.ray and self.engines:
            raise ServeConfigError("--ray and --engine do not mix: pick the Ray replicas "
                                   "or the servers")
        if self.ray and self.backend == "openai":
            raise ServeConfigError("--ray replicas run the in-process engine; an OpenAI "
                                   "server is not a replica (give several as --engine URL)")
        if self.replicas is not None and self.replicas < 1:
            raise ServeConfigError(f"--replicas must be at least 1, got {self.replicas}")

    def ray_settings(self) -> RaySettings | None:
        if not self.ray:
            return None
        return RaySettings.of(self.ray_address or True, self.replicas)

    def backend_options(self) -> dict[str, Any]:
        """What `open_backend` gets besides the model and URL."""
        if self.backend == "sim":  # the simulated H100, as `taskloom bench` runs it
            return {"config": H100_LLAMA3_8B_ENGINE, "speed": self.sim_speed,
                    "stream_interval": self.sim_stream_interval}
        if self.backend == "vllm" and self.dtype is not None:
            return {"dtype": self.dtype}
        return {}

    def tenants(self) -> dict[str, str]:
        """API key -> tenant id. The id is a digest, so keys are never written down."""
        return {key: tenant_id(key) for key in self.api_keys}


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def tenant_id(api_key: str) -> str:
    return "t-" + hashlib.sha256(api_key.encode()).hexdigest()[:16]


def keys_from_env() -> tuple[str, ...]:
    raw = os.environ.get(API_KEYS_ENV, "")
    return tuple(k.strip() for k in raw.split(",") if k.strip())
