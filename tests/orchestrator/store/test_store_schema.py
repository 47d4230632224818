"""The store's file: WAL mode, a versioned schema, and a file from a newer taskloom refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from taskloom.orchestrator.store import RunStore
from taskloom.orchestrator.store.schema import _MIGRATIONS, SCHEMA_VERSION, SchemaTooNew, connect


def test_a_new_file_is_in_wal_mode_at_the_current_version(tmp_path: Path) -> None:
    connection = connect(str(tmp_path / "t.db"))
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "nodes", "events"} <= tables


def test_opening_twice_migrates_once(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    connect(path).execute(
        "INSERT INTO runs (run_id, program, status, created_at, updated_at) "
        "VALUES ('r', 'p', 'running', 0, 0)"
    )
    again = connect(path)
    assert again.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1


def test_a_file_from_a_newer_taskloom_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "t.db")
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    with pytest.raises(SchemaTooNew, match="schema version"):
        connect(path)


def test_a_version_1_file_gains_the_accounting_columns_and_keeps_its_runs(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    raw = sqlite3.connect(str(path), isolation_level=None)
    for statement in _MIGRATIONS[0].split(";"):
        if statement.strip():
            raw.execute(statement)
    raw.execute("PRAGMA user_version = 1")
    raw.execute("INSERT INTO runs (run_id, program, status, created_at, updated_at) "
                "VALUES ('r', 'p', 'succeeded', 0, 0)")
    raw.execute("INSERT INTO nodes (run_id, node_id, kind, status, llm_calls) "
                "VALUES ('r', 'a', 'llm', 'succeeded', 2)")
    raw.close()
    loaded = RunStore(path).load("r")
    node = loaded.nodes["a"]
    assert node.llm_calls == 2 and node.tool_calls == 0 and node.engine_s == 0.0
    assert node.cost_usd is None and loaded.budget_exceeded is None


def test_a_version_2_file_gains_the_preemption_column_and_its_nodes_load(
    tmp_path: Path,
) -> None:
    path = tmp_path / "t.db"
    raw = sqlite3.connect(str(path), isolation_level=None)
    for migration in _MIGRATIONS[:2]:
        for statement in migration.split(";"):
            if statement.strip():
                raw.execute(statement)
    raw.execute("PRAGMA user_version = 2")
    raw.execute("INSERT INTO runs (run_id, program, status, created_at, updated_at) "
                "VALUES ('r', 'p', 'succeeded', 0, 0)")
    raw.execute("INSERT INTO nodes (run_id, node_id, kind, status, llm_calls, queue_s) "
                "VALUES ('r', 'a', 'llm', 'succeeded', 2, 1.5)")
    raw.close()
    node = RunStore(path).load("r").nodes["a"]
    assert (node.llm_calls, node.queue_s) == (2, 1.5)
    assert node.preempted == () and node.preemptions == 0
