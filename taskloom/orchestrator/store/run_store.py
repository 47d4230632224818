"""`RunStore`: the runs of this machine in one SQLite file, safe to share between the
CLI, the server and several processes (WAL mode; every write is its own transaction)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from taskloom.orchestrator.result import BudgetOverrun, NodeResult, RunResult, RunStatus
from taskloom.orchestrator.store import queries, writer
from taskloom.orchestrator.store.records import (
    FINISHED_NODE_STATUSES,
    RunRow,
    StoredEvent,
    StoredStatus,
)
from taskloom.orchestrator.store.schema import connect
from taskloom.orchestrator.store.spec_capture import reloadable_text
from taskloom.program.models import Program

T = TypeVar("T")
DB_NAME = "taskloom.db"


class RunNotFound(KeyError):
    """No run by that id in the store."""

    def __str__(self) -> str:
        return f"no run '{self.args[0]}' in the store"


def default_store_path() -> Path:
    return Path(os.environ.get("TASKLOOM_HOME", ".taskloom")) / DB_NAME


class RunStore:
    """Runs and their nodes. `path` is the database file, or a directory to hold
    `taskloom.db`; None: `$TASKLOOM_HOME/taskloom.db` (default `.taskloom/`)."""

    def __init__(self, path: Path | str | None = None) -> None:
        chosen = Path(path) if path is not None else default_store_path()
        if chosen.is_dir() or (not chosen.suffix and not chosen.exists()):
            chosen = chosen / DB_NAME
        chosen.parent.mkdir(parents=True, exist_ok=True)
        self.path = chosen
        self._connection = connect(str(chosen))
        # One connection, many callers (the server's threads, the executor's hooks).
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def _locked(self, action: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return action(self._connection, *args, **kwargs)

    # -- writes ------------------------------------------------------------------------

    def create_run(self, row: RunRow) -> None:
        """Record a run before it starts; an id already stored is left as it is."""
        self._locked(writer.insert_run, row)

    def begin(
        self, run_id: str, program: Program, inputs: Mapping[str, Any], policy: str | None
    ) -> None:
        """A run starts (or starts again after a crash): mark it running, recording it
        first, with the text to rebuild its program from, if it is new."""
        if self.get(run_id) is None:
            text, file = reloadable_text(program)
            self.create_run(RunRow(
                run_id=run_id, program=program.name, status=StoredStatus.RUNNING,
                origin="cli", spec_text=text, spec_file=file, inputs=dict(inputs),
                policy=policy,
            ))
        else:
            self._locked(writer.mark_running, run_id)

    def checkpoint(self, run_id: str, nodes: Iterable[NodeResult]) -> None:
        """Commit finished nodes; on disk when this returns."""
        self._locked(writer.save_nodes, run_id, list(nodes))

    def save(self, result: RunResult) -> Path:
        """Store a run's final (or partial) result, all nodes included."""
        self._locked(writer.finish_run, result)
        return self.path

    def set_status(self, run_id: str, status: StoredStatus, error: str | None = None) -> None:
        self._locked(writer.set_status, run_id, status, error)

    def append_event(self, run_id: str, kind: str, data: dict[str, Any]) -> int:
        return self._locked(writer.append_event, run_id, kind, data)

    # -- reads -------------------------------------------------------------------------

    def get(self, run_id: str) -> RunRow | None:
        return self._locked(queries.get_run, run_id)

    def runs(
        self,
        *,
        tenant: str | None = None,
        status: StoredStatus | None = None,
        origin: str | None = None,
        limit: int | None = None,
    ) -> list[RunRow]:
        return self._locked(
            queries.list_runs, tenant=tenant, status=status, origin=origin, limit=limit
        )

    def nodes(self, run_id: str) -> dict[str, NodeResult]:
        return self._locked(queries.nodes, run_id)

    def events_after(self, run_id: str, after: int = 0) -> list[StoredEvent]:
        return self._locked(queries.events_after, run_id, after)

    def counts(self) -> dict[str, int]:
        return self._locked(queries.count_by_status)

    def run_ids(self) -> list[str]:
        """Every stored run id, oldest first."""
        return [row.run_id for row in reversed(self.runs())]

    def load(self, run_id: str) -> RunResult:
        """A stored run as a `RunResult`. A run still marked running (or cut short by a
        crash) reads as cancelled, with an error that says so."""
        row = self.get(run_id)
        if row is None:
            raise RunNotFound(run_id)
        finished = row.status is not StoredStatus.RUNNING
        return RunResult(
            run_id=row.run_id,
            program=row.program,
            status=RunStatus(row.status.value) if finished else RunStatus.CANCELLED,
            inputs=row.inputs,
            outputs=row.outputs or {},
            nodes=self.nodes(run_id),
            error=row.error if finished else "not finished: running, or cut short by a crash",
            started_at=row.created_at if row.started_at is None else row.started_at,
            wall_s=row.wall_s,
            budget_exceeded=BudgetOverrun(**row.budget_exceeded) if row.budget_exceeded else None,
        )

    def finished_nodes(self, run_id: str, node_ids: Collection[str]) -> dict[str, NodeResult]:
        """What a resumed run keeps: each node of `node_ids` that finished, with the tasks
        it ran (`node/plan1/2`); the tasks of a node that had not finished are dropped, as
        is everything else the crash left half done."""
        stored = self.nodes(run_id)
        done = {
            node_id for node_id, node in stored.items()
            if node_id in node_ids and node.status in FINISHED_NODE_STATUSES
        }
        kept = {
            node_id: node for node_id, node in stored.items()
            if node_id in done or node_id.split("/", 1)[0] in done
        }
        self._locked(writer.forget_nodes_except, run_id, kept.keys())
        return kept
