"""Every write to the run store. Each function is one transaction, committed before it
returns: a node checkpointed here is on disk before its dependents start."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from collections.abc import Collection, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from typing import Any

from taskloom.orchestrator.result import NodeResult, RunResult
from taskloom.orchestrator.store.records import (
    NODE_COLUMNS,
    RunRow,
    StoredStatus,
    dumps,
    node_values,
)

_NODE_UPSERT = (
    f"INSERT OR REPLACE INTO nodes ({NODE_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(NODE_COLUMNS.split(',')))})"
)


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def spec_hash(spec_text: str | None) -> str | None:
    if spec_text is None:
        return None
    return hashlib.sha256(spec_text.encode()).hexdigest()


def insert_run(connection: sqlite3.Connection, row: RunRow) -> None:
    """Record a new run; a run id already stored is left as it is."""
    now = time.time()
    with transaction(connection):
        connection.execute(
            "INSERT OR IGNORE INTO runs (run_id, tenant, origin, program, spec_text, "
            "spec_file, spec_hash, inputs, policy, status, created_at, updated_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.run_id, row.tenant, row.origin, row.program, row.spec_text,
                row.spec_file, row.spec_hash or spec_hash(row.spec_text), dumps(row.inputs),
                row.policy, row.status.value, row.created_at or now, now,
            ),
        )


def mark_running(connection: sqlite3.Connection, run_id: str) -> None:
    with transaction(connection):
        connection.execute(
            "UPDATE runs SET status = ?, updated_at = ?, finished_at = NULL WHERE run_id = ?",
            (StoredStatus.RUNNING.value, time.time(), run_id),
        )


def save_nodes(connection: sqlite3.Connection, run_id: str, nodes: Iterable[NodeResult]) -> None:
    with transaction(connection):
        connection.executemany(_NODE_UPSERT, [node_values(run_id, n) for n in nodes])


def forget_nodes_except(
    connection: sqlite3.Connection, run_id: str, keep: Collection[str]
) -> None:
    """Drop the stored nodes of `run_id` not in `keep` (what a crash left half done)."""
    with transaction(connection):
        stored = [r[0] for r in connection.execute(
            "SELECT node_id FROM nodes WHERE run_id = ?", (run_id,))]
        connection.executemany(
            "DELETE FROM nodes WHERE run_id = ? AND node_id = ?",
            [(run_id, n) for n in stored if n not in keep],
        )


def finish_run(connection: sqlite3.Connection, result: RunResult, **fields: Any) -> None:
    """Store the whole result: the run's row (created if the run was never begun) and
    every node, in the result's order."""
    now = time.time()
    overrun = None if result.budget_exceeded is None else dumps(asdict(result.budget_exceeded))
    with transaction(connection):
        connection.execute(
            "INSERT OR IGNORE INTO runs (run_id, program, inputs, status, created_at, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
            (result.run_id, result.program, dumps(result.inputs), result.status.value,
             result.started_at or now, now),
        )
        connection.execute(
            "UPDATE runs SET status = ?, outputs = ?, error = ?, wall_s = ?, started_at = ?, "
            "updated_at = ?, finished_at = ?, budget_exceeded = ? WHERE run_id = ?",
            (result.status.value, dumps(result.outputs), result.error, result.wall_s,
             result.started_at, now, now, overrun, result.run_id),
        )
        connection.execute("DELETE FROM nodes WHERE run_id = ?", (result.run_id,))
        connection.executemany(
            _NODE_UPSERT, [node_values(result.run_id, n) for n in result.nodes.values()]
        )


def set_status(
    connection: sqlite3.Connection, run_id: str, status: StoredStatus, error: str | None
) -> None:
    with transaction(connection):
        connection.execute(
            "UPDATE runs SET status = ?, error = ?, updated_at = ? WHERE run_id = ?",
            (status.value, error, time.time(), run_id),
        )


def append_event(
    connection: sqlite3.Connection, run_id: str, kind: str, data: dict[str, Any]
) -> int:
    """Store one event of `run_id`'s stream; returns its number (1, 2, ...)."""
    with transaction(connection):
        row = connection.execute(
            "INSERT INTO events (run_id, seq, kind, data) "
            "SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ? FROM events WHERE run_id = ? "
            "RETURNING seq",
            (run_id, kind, dumps(data), run_id),
        ).fetchone()
    return int(row[0])
