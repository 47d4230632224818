"""A real `taskloom serve` in a subprocess, on a free loopback port, over real HTTP (a
helper of the server tests, not a test module)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
START_TIMEOUT_S = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(HERE), env.get("PYTHONPATH", "")])
    env.pop("TASKLOOM_API_KEYS", None)
    env.update(extra)
    return env


def taskloom(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskloom", *args]


@dataclass
class Server:
    """A server process; `restart` starts a new one on the same port and store."""

    args: list[str]
    workdir: Path
    port: int = field(default_factory=free_port)
    engine: list[str] = field(default_factory=lambda: ["--backend", "scripted"])
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    start_timeout_s: float = START_TIMEOUT_S
    stop_timeout_s: float = 15.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        log = (self.workdir / f"server-{self.starts}.log").open("wb")
        self.starts += 1
        self.process = subprocess.Popen(
            taskloom("serve", "--port", str(self.port), *self.engine,
                     "--store", str(self.workdir / "store.db"), "--tools", "serve_test_tools",
                     *self.args),
            cwd=self.workdir, env=subprocess_env(), stdout=log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not start: {self.log()}")

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> Server:
        self.kill()
        return self.start()

    def log(self) -> str:
        logs = sorted(self.workdir.glob("server-*.log"))
        return "\n".join(p.read_text(errors="replace") for p in logs)


StartServer = Callable[..., Server]
