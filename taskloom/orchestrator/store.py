"""Keeps every run's result on disk as JSON, so nothing computed is lost on failure or
Ctrl-C, and a run can be looked at afterwards."""

from __future__ import annotations

import json
import os
from pathlib import Path

from taskloom.orchestrator.result import RunResult


def default_store_root() -> Path:
    return Path(os.environ.get("TASKLOOM_HOME", ".taskloom")) / "runs"


class RunStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root if root is not None else default_store_root()

    def save(self, result: RunResult) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{result.run_id}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(result.to_json())
        tmp.replace(path)  # atomic: a reader never sees half a file
        return path

    def load(self, run_id: str) -> RunResult:
        return RunResult.from_dict(json.loads((self.root / f"{run_id}.json").read_text()))

    def run_ids(self) -> list[str]:
        if not self.root.exists():
            return []
        files = sorted(self.root.glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files]
