"""Every read of the run store."""

from __future__ import annotations

import json
import sqlite3

from taskloom.orchestrator.result import NodeResult
from taskloom.orchestrator.store.records import (
    NODE_COLUMNS,
    RunRow,
    StoredEvent,
    StoredStatus,
    node_from_row,
    run_from_row,
)


def get_run(connection: sqlite3.Connection, run_id: str) -> RunRow | None:
    row = connection.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return run_from_row(row) if row is not None else None


def list_runs(
    connection: sqlite3.Connection,
    *,
    tenant: str | None = None,
    status: StoredStatus | None = None,
    origin: str | None = None,
    limit: int | None = None,
) -> list[RunRow]:
    """Runs, newest first, narrowed by whichever of tenant, status and origin are given."""
    where, params = [], []
    for column, value in (("tenant", tenant), ("status", status), ("origin", origin)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(str(value))
    sql = "SELECT * FROM runs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, rowid DESC"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    return [run_from_row(r) for r in connection.execute(sql, params)]


def nodes(connection: sqlite3.Connection, run_id: str) -> dict[str, NodeResult]:
    """The stored nodes of a run, in the order they were stored."""
    rows = connection.execute(
        f"SELECT {NODE_COLUMNS} FROM nodes WHERE run_id = ? ORDER BY rowid", (run_id,)
    )
    return {row["node_id"]: node_from_row(row) for row in rows}


def events_after(connection: sqlite3.Connection, run_id: str, after: int) -> list[StoredEvent]:
    rows = connection.execute(
        "SELECT seq, kind, data FROM events WHERE run_id = ? AND seq > ? ORDER BY seq",
        (run_id, after),
    )
    return [StoredEvent(run_id, r["seq"], r["kind"], json.loads(r["data"])) for r in rows]


def count_by_status(connection: sqlite3.Connection) -> dict[str, int]:
    rows = connection.execute("SELECT status, COUNT(*) FROM runs GROUP BY status")
    return {status: int(count) for status, count in rows}
