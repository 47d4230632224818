"""A run's JSON, as `taskloom show` prints it: a plan node with tasks, a map, a failed
tool, a skipped node that never started, and a node still running."""

from __future__ import annotations

from typing import Any

import pytest


def _node(kind: str, status: str, start: float | None, end: float | None,
          **extra: Any) -> dict[str, Any]:
    return {"kind": kind, "status": status, "start": start, "end": end, "attempts": 1,
            "prompt_tokens": 0, "generated_tokens": 0, "cached_prompt_tokens": 0,
            "llm_calls": 0, "error": None, "output": None, **extra}


@pytest.fixture
def run_json() -> dict[str, Any]:
    return {
        "run_id": "abc123",
        "program": "towns",
        "status": "running",
        "wall_s": 2.0,
        "nodes": {
            "answer": _node("plan", "succeeded", 0.1, 1.5, prompt_tokens=40,
                            generated_tokens=12),
            "answer/plan1/2": _node("tool", "succeeded", 0.4, 0.6),
            "answer/plan1/1": _node("tool", "failed", 0.2, 0.5, error="no town 'X'"),
            "cities": _node("map", "succeeded", 0.0, 0.8),
            "summary": _node("llm", "running", 1.6, None),
            "blocked": _node("tool", "skipped", None, None, error="not run: upstream"),
        },
    }
