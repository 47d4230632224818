"""The JSON a client sees: a stored run as `taskloom run --json` prints it, and a run's
events as Server-Sent Events."""

from __future__ import annotations

import json
from typing import Any

from taskloom.cli_render import run_result_json
from taskloom.orchestrator.store import RunRow, RunStore, StoredEvent, StoredStatus


def stored_run_json(store: RunStore, row: RunRow) -> dict[str, Any]:
    """`run --json`'s object; a run not finished yet says `running`."""
    shown = run_result_json(store.load(row.run_id))
    if row.status is StoredStatus.RUNNING:
        shown["status"], shown["error"] = StoredStatus.RUNNING.value, None
    return {**shown, "inputs": row.inputs, "policy": row.policy,
            "created_at": row.created_at, "finished_at": row.finished_at}


def sse(event: StoredEvent) -> str:
    data = json.dumps(event.data, default=str)
    return f"id: {event.seq}\nevent: {event.kind}\ndata: {data}\n\n"


KEEP_ALIVE = ": keep-alive\n\n"
