"""A killable vLLM server of the tests' own (a helper of the tests, not a test module)."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path


class VLLMReplica:
    """One `vllm serve` of the embedded model in float32 (greedy answers then do not
    depend on the batch), in its own process group so that a test can kill it whole."""

    def __init__(self, process: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
        self.process, self.base_url, self.log = process, base_url, log

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
